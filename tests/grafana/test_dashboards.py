"""Grafana dashboards: generated JSON is committed, well formed, and its PromQL runs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import free_port
from tests.support.alerting import start_prometheus, wait_ready
from vigil.render import dashboards

REPO = Path(__file__).resolve().parents[2]
PROVISIONING = REPO / "grafana" / "provisioning"
COMMITTED = REPO / "grafana" / "dashboards"

SERVICE_METRICS = [
    "bentoml_service_request_total",
    "bentoml_service_request_duration_seconds_bucket",
    "bentoml_service_request_in_progress",
    "vigil_predictions_total",
    "vigil_prediction_confidence_bucket",
    "vigil_inference_log_failures_total",
]
DRIFT_METRICS = [
    "vigil_drift_detected",
    "vigil_drift_share",
    "vigil_feature_drift_score",
    "vigil_feature_drifted",
    "vigil_drift_window_rows",
    "vigil_drift_last_success_timestamp_seconds",
    "vigil_drift_runs_total",
    'ALERTS{alertstate="firing"',
    "vigil_model_quality",
    "vigil_labeled_rows",
]


def _committed(name: str) -> dict:
    return json.loads((COMMITTED / name).read_text())


def test_committed_json_equals_generator_output():
    for name, make in dashboards.DASHBOARDS.items():
        committed = (COMMITTED / name).read_text()
        assert committed == dashboards.render_dashboard(make()), (
            f"grafana/dashboards/{name} is out of date: run `vigil render dashboards`"
        )


def test_cli_writes_the_same_files(tmp_path):
    result = CliRunner().invoke(dashboards.app, ["--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in dashboards.DASHBOARDS:
        assert (tmp_path / name).read_text() == (COMMITTED / name).read_text()


@pytest.mark.parametrize("name", list(dashboards.DASHBOARDS))
def test_dashboard_shape(name):
    board = _committed(name)
    assert board["schemaVersion"] == 42
    assert board["uid"] == name.removesuffix(".json")
    panels = board["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels), "panel ids must be unique"
    graphs = [panel for panel in panels if panel["type"] != "row"]
    assert graphs
    for panel in graphs:
        targets = panel.get("targets") or []
        assert targets, f"panel {panel['title']!r} has no query"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in targets:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["type"] == "prometheus"
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]


@pytest.mark.parametrize(
    ("name", "metrics"),
    [("vigil-service.json", SERVICE_METRICS), ("vigil-drift.json", DRIFT_METRICS)],
)
def test_dashboards_show_the_contract_metrics(name, metrics):
    exprs = " ".join(t["expr"] for _, t in dashboards.panel_targets(_committed(name)))
    missing = [metric for metric in metrics if metric not in exprs]
    assert not missing


def test_quality_panels_cover_each_tasks_metrics():
    from vigil.tasks import CLASSIFIER, REGRESSOR

    scores = [m for m in CLASSIFIER.metrics if CLASSIFIER.higher_is_better[m]]
    assert dashboards.CLASSIFIER_SCORES.split("|") == scores
    errors = dashboards.REGRESSOR_ERRORS.split("|")
    assert set(errors) | {"r2"} == set(REGRESSOR.metrics)
    exprs = " ".join(
        t["expr"] for _, t in dashboards.panel_targets(_committed("vigil-service.json"))
    )
    assert "vigil_prediction_value_bucket" in exprs


def test_empty_when_healthy_queries_fall_back_to_zero():
    exprs = [t["expr"] for _, t in dashboards.panel_targets(_committed("vigil-drift.json"))]
    alert_exprs = [e for e in exprs if "ALERTS{" in e]
    assert alert_exprs and all(e.endswith("or vector(0)") for e in alert_exprs)


def test_dashboard_queries_substitutes_macros():
    queries = dashboards.dashboard_queries()
    assert queries == dashboards.dashboard_queries(COMMITTED)
    total = sum(len(dashboards.panel_targets(_committed(name))) for name in dashboards.DASHBOARDS)
    assert len(queries) == total
    assert not [q for q in queries if "$" in q]
    assert any("[1m]" in q for q in queries)
    assert dashboards.substitute_macros(
        "rate(x[$__rate_interval]) + rate(x[$__interval]) + increase(x[$__range])",
        rate_interval="30s",
    ) == ("rate(x[30s]) + rate(x[15s]) + increase(x[1h])")


def test_provisioning_matches_compose():
    source = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (prometheus,) = source["datasources"]
    assert prometheus["type"] == "prometheus" and prometheus["url"] == "http://prometheus:9090"
    assert prometheus["isDefault"] is True

    providers = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    dashboard_mounts = [m for m in mounts if m.split(":")[0] == "./grafana/dashboards"]
    assert dashboard_mounts, "docker-compose.yml does not mount grafana/dashboards"
    assert dashboard_mounts[0].split(":")[1] == provider["options"]["path"]


@pytest.fixture
def prometheus(tmp_path):
    """A real Prometheus with no targets: enough to parse and evaluate every query."""
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    port = free_port()
    proc = start_prometheus(config, tmp_path / "data", port, tmp_path / "prometheus.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base)
        yield base
    finally:
        proc.stop()


@pytest.mark.integration
def test_every_dashboard_query_parses_and_runs_in_prometheus(prometheus):
    failures = []
    for query in dashboards.dashboard_queries():
        response = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=10)
        if response.status_code != 200 or response.json().get("status") != "success":
            failures.append(f"{query}\n  -> {response.status_code} {response.text[:300]}")
    assert not failures, "\n".join(failures)
