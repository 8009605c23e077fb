"""The monitor's /metrics says what the check's JSON says; series follow the production version;
the HTTP server serves reports and nothing else."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitoring.check import Checker
from monitoring.metrics import MonitorMetrics
from monitoring.monitor import Monitor
from monitoring.server import MonitorServer
from tests.monitoring.generators import breast_cancer_rows, breast_cancer_sd, fill_log
from vigil.log.inference_log import InferenceLog
from vigil.registry.store import Registry
from vigil.settings import get_settings


@pytest.fixture
def env(trained_home):
    settings = get_settings()
    log = InferenceLog.from_settings(settings)
    log.create_schema()
    registry = CollectorRegistry()
    monitor = Monitor(
        settings, MonitorMetrics(registry), checker=Checker(settings, report=False, log=log)
    )
    server = MonitorServer(("127.0.0.1", 0), registry, settings.reports_dir)
    server.start()
    yield settings, log, Registry(settings), monitor, f"http://127.0.0.1:{server.port}"
    server.stop()
    log.close()


def _get(url: str) -> tuple[int, str, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def _samples(base: str) -> dict[tuple, float]:
    status, text, _ = _get(base + "/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def _names(samples) -> set[str]:
    return {name for name, _ in samples}


def test_before_any_run_only_counters_and_no_verdict(env):
    *_, base = env
    samples = _samples(base)
    for outcome in ("ok", "insufficient_data", "error"):
        assert _value(samples, "vigil_drift_runs_total", outcome=outcome) == 0
    assert "vigil_drift_detected" not in _names(samples)
    assert "process_start_time_seconds" in _names(samples)


def test_metrics_equal_the_json_of_the_same_check(env):
    settings, log, registry, monitor, base = env
    bundle = registry.load_production()
    rows = breast_cancer_rows(1000, seed=11, with_target=True)
    truth = rows.pop("target")
    rows["mean area"] += 0.6 * breast_cancer_sd("mean area")
    rows.loc[:99, "mean smoothness"] = None  # 10% missing
    ids = fill_log(log, bundle, rows)
    log.add_feedback(zip(ids[:300], truth[:300].tolist(), strict=True))
    result = monitor.run_once()
    p, m = result.payload, _samples(base)
    v = p["model_version"]
    assert _value(m, "vigil_drift_detected", model_version=v) == int(p["drift_detected"])
    assert _value(m, "vigil_drift_share", model_version=v) == p["drift_share"]
    assert _value(m, "vigil_drift_window_rows", model_version=v) == p["window_rows"] == 1000
    assert p["drifted_features"] == ["mean area"]
    for name, f in p["features"].items():
        key = {"model_version": v, "feature": name, "method": f["method"]}
        assert _value(m, "vigil_feature_drift_score", **key) == f["score"]
        assert _value(m, "vigil_feature_drift_threshold", **key) == f["threshold"]
        drifted = _value(m, "vigil_feature_drifted", model_version=v, feature=name)
        assert drifted == int(f["drifted"])
        missing = _value(m, "vigil_feature_missing_share", model_version=v, feature=name)
        assert missing == f["missing_share"]
    assert p["features"]["mean smoothness"]["missing_share"] == 0.1
    assert (
        _value(m, "vigil_prediction_drift_score", model_version=v) == p["prediction_drift"]["score"]
    )
    quality = p["quality"]
    assert quality["labeled_rows"] == 300 and quality["labeled_fraction"] == 0.3
    assert _value(m, "vigil_labeled_rows", model_version=v) == 300
    for metric in ("accuracy", "f1", "precision", "recall", "log_loss", "roc_auc"):
        assert _value(m, "vigil_model_quality", model_version=v, metric=metric) == quality[metric]
    for metric, value in bundle.metrics.items():
        ref = _value(m, "vigil_model_quality_reference", model_version=v, metric=metric)
        assert ref == value
    assert _value(m, "vigil_drift_runs_total", outcome="ok") == 1
    assert _value(m, "vigil_drift_runs_total", outcome="error") == 0
    last_run = _value(m, "vigil_drift_last_run_timestamp_seconds")
    assert last_run > 0 and _value(m, "vigil_drift_last_success_timestamp_seconds") >= last_run
    assert _value(m, "vigil_drift_run_duration_seconds") > 0


def test_a_new_production_version_removes_the_old_versions_series(env):
    settings, log, registry, monitor, base = env
    old = registry.load_production()
    fill_log(log, old, breast_cancer_rows(300, seed=12))
    monitor.run_once()
    assert any(dict(labels).get("model_version") == old.tag for _, labels in _samples(base))
    new_tag = registry.save(old.pipeline, old.contract, old.reference)
    registry.promote(new_tag)
    fill_log(log, registry.load_production(), breast_cancer_rows(150, seed=13))
    result = monitor.run_once()
    assert result.payload["model_version"] == new_tag
    assert result.payload["window_rows"] == 150  # the old version's rows do not count
    versions = {dict(labels).get("model_version") for _, labels in _samples(base)} - {None}
    assert versions == {new_tag}


def test_insufficient_rows_withdraw_the_verdict(env):
    settings, log, registry, monitor, base = env
    bundle = registry.load_production()
    fill_log(log, bundle, breast_cancer_rows(300, seed=14))
    monitor.run_once()
    assert "vigil_drift_detected" in _names(_samples(base))
    monitor.checker.settings = get_settings(drift_min_rows=1000)
    result = monitor.run_once()
    assert result.outcome == "insufficient_data"
    m = _samples(base)
    assert "vigil_drift_detected" not in _names(m) and "vigil_feature_drifted" not in _names(m)
    assert _value(m, "vigil_drift_window_rows", model_version=bundle.tag) == 300
    assert _value(m, "vigil_drift_runs_total", outcome="insufficient_data") == 1


def test_reports_endpoints(env):
    settings, *_, base = env
    assert _get(base + "/reports/latest")[0] == 404
    settings.reports_dir.mkdir(parents=True)
    for stamp in ("20260101T000000.000000Z", "20260102T000000.000000Z"):
        (settings.reports_dir / f"drift-{stamp}-v.html").write_text(f"<html>{stamp}</html>")
    status, body, headers = _get(base + "/reports/latest")
    assert status == 200 and "20260102" in body
    assert headers["Content-Location"] == "/reports/drift-20260102T000000.000000Z-v.html"
    assert "20260101" in _get(base + "/reports/drift-20260101T000000.000000Z-v.html")[1]
    status, index, _ = _get(base + "/reports/")
    assert status == 200 and index.index("20260102") < index.index("20260101")
    for bad in ("/reports/../production.json", "/reports/%2e%2e%2fx.html", "/reports/x.txt", "/"):
        assert _get(base + bad)[0] == 404
    status, body, _ = _get(base + "/healthz")
    assert status == 200 and '"status": "ok"' in body
