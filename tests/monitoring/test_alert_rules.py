"""Alert rules: promtool checks and unit tests, and the contract's names, labels and links."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import need_binary
from vigil.render import alerting as render

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "monitoring" / "prometheus"
RULES = PROMETHEUS_DIR / "rules" / "vigil.rules.yml"
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))
RUNBOOK = REPO / "docs" / "runbook.md"

CONTRACT_ALERTS = {
    "ProductionModelNotServed",
    "DataDriftDetected",
    "FeatureDriftDetected",
    "DriftCheckStale",
    "DriftMonitorDown",
    "PredictionServiceDown",
    "HighPredictionErrorRate",
    "HighPredictionLatency",
    "InferenceLogFailures",
    "ModelQualityDrop",
    "ModelQualityDropEstimated",
    "DataQualityDegraded",
}
DRIFT_ALERTS = {"DataDriftDetected", "FeatureDriftDetected"}


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    promtool = need_binary("promtool")
    return subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=60, cwd=REPO
    )


def _rules(path: Path = RULES) -> dict[str, dict]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


@pytest.mark.integration
def test_promtool_check_rules():
    result = _promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.compose.yml"])
def test_promtool_check_config(config):
    result = _promtool("check", "config", PROMETHEUS_DIR / config)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_promtool_rule_unit_tests():
    assert RULE_TESTS, "no monitoring/prometheus/tests/*.test.yml"
    result = _promtool("test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_cover_firing_and_not_firing_for_every_alert():
    firing: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        spec = yaml.safe_load(path.read_text())
        assert spec["rule_files"] == ["../rules/vigil.rules.yml"], path
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert firing >= CONTRACT_ALERTS, f"never tested firing: {CONTRACT_ALERTS - firing}"
    assert silent >= CONTRACT_ALERTS, f"never tested silent: {CONTRACT_ALERTS - silent}"


def test_every_contract_alert_is_defined_with_labels_and_annotations():
    rules = _rules()
    assert set(rules) == CONTRACT_ALERTS
    runbook_anchors = _markdown_anchors(RUNBOOK.read_text())
    for name, rule in rules.items():
        assert rule.get("for"), f"{name} has no for: smoothing"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], name
        path, _, anchor = notes["runbook"].partition("#")
        assert path == "docs/runbook.md" and anchor in runbook_anchors, (name, notes["runbook"])
        if name in DRIFT_ALERTS:
            assert notes["report"] == "http://127.0.0.1:9108/reports/latest", name
        # Name the model version (and feature) in the text wherever the series carry them.
        if "vigil_drift_detected" in rule["expr"] or "vigil_model_quality" in rule["expr"]:
            assert "$labels.model_version" in notes["description"], name
        if "vigil_feature_drifted" in rule["expr"]:
            text = notes["summary"] + notes["description"]
            assert "$labels.feature" in text and "$labels.model_version" in text, name


def test_down_alerts_use_the_contract_job_names():
    rules = _rules()
    assert rules["PredictionServiceDown"]["expr"] == 'up{job="vigil-service"} == 0'
    assert rules["DriftMonitorDown"]["expr"] == 'up{job="vigil-monitor"} == 0'
    jobs = {
        job["job_name"]
        for job in yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())["scrape_configs"]
    }
    assert jobs == {"vigil-service", "vigil-monitor"}


@pytest.mark.integration
def test_shortened_render_passes_promtool(tmp_path):
    paths = render.render_configs(
        tmp_path,
        service_target="127.0.0.1:13000",
        monitor_target="127.0.0.1:19108",
        alertmanager_target="127.0.0.1:19093",
        webhook_url="http://127.0.0.1:19095/alerts",
        scrape_interval="1s",
        evaluation_interval="1s",
        for_all="0s",
        stale_after="30s",
        rate_window="30s",
        error_rate_threshold=0.2,
        latency_p95_seconds=2,
        quality_margin=0.1,
        quality_min_labeled_rows=10,
    )
    result = _promtool("check", "config", paths["prometheus"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert {rule["for"] for rule in _rules(paths["rules"]).values()} == {"0s"}


def _markdown_anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the headings: lower case, punctuation dropped, spaces to -."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return anchors
