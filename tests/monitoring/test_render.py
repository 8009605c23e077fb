"""vigil.render.alerting: committed configs match the templates, and overrides land where meant."""

from __future__ import annotations

import os

import pytest
import yaml
from typer.testing import CliRunner

from vigil.render import alerting as render
from vigil.settings import Settings, get_settings


@pytest.fixture
def clean_settings_env(tmp_path, monkeypatch):
    """No VIGIL_* variables and no .env file: settings are the built-in defaults."""
    for name in list(os.environ):
        if name.startswith("VIGIL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_committed_configs_equal_render_of_default_settings(clean_settings_env):
    expected = render.committed_files(get_settings())
    assert expected == render.committed_files(Settings.model_construct())
    for relative, text in expected.items():
        committed = (render.MONITORING_DIR / relative).read_text(encoding="utf-8")
        assert committed == text, (
            f"monitoring/{relative} is out of date: run `vigil render configs --committed`"
        )


def test_render_configs_writes_a_consistent_set(tmp_path):
    paths = render.render_configs(
        tmp_path,
        service_target="127.0.0.1:13000",
        monitor_target="127.0.0.1:19108",
        alertmanager_target="127.0.0.1:19093",
        webhook_url="http://127.0.0.1:19095/alerts",
        scrape_interval="1s",
        evaluation_interval="1s",
        for_all="0s",
        for_overrides={"DriftMonitorDown": "3s"},
        stale_after="90s",
        group_wait="1s",
        group_interval="2s",
        report_base_url="http://127.0.0.1:19108/reports/",
    )
    assert set(paths) == {"prometheus", "rules", "alertmanager"}
    prom = yaml.safe_load(paths["prometheus"].read_text())
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in prom["scrape_configs"]}
    assert jobs == {"vigil-service": ["127.0.0.1:13000"], "vigil-monitor": ["127.0.0.1:19108"]}
    assert prom["global"] == {"scrape_interval": "1s", "evaluation_interval": "1s"}
    targets = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["127.0.0.1:19093"]
    for rule_file in prom["rule_files"]:
        assert (paths["prometheus"].parent / rule_file).resolve() == paths["rules"].resolve()

    rules = {
        rule["alert"]: rule
        for group in yaml.safe_load(paths["rules"].read_text())["groups"]
        for rule in group["rules"]
    }
    assert set(rules) == set(render.ALERT_NAMES)
    assert rules.pop("DriftMonitorDown")["for"] == "3s"
    assert {rule["for"] for rule in rules.values()} == {"0s"}
    assert rules["DriftCheckStale"]["expr"].strip().endswith(") > 90")
    assert rules["DataDriftDetected"]["annotations"]["report"] == (
        "http://127.0.0.1:19108/reports/latest"
    )

    am = yaml.safe_load(paths["alertmanager"].read_text())
    assert am["receivers"][0]["webhook_configs"][0]["url"] == "http://127.0.0.1:19095/alerts"
    assert (am["route"]["group_wait"], am["route"]["group_interval"]) == ("1s", "2s")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scrape_interval": "1.5s"},  # promtool and Prometheus want whole units
        {"service_target": "localhost"},
        {"webhook_url": "ftp://example.com/x"},
        {"webhook_url": "http://example.com/a b"},
        {"for_overrides": {"NoSuchAlert": "1m"}},
        {"stale_after": "soon"},
    ],
)
def test_render_configs_rejects_bad_values(tmp_path, kwargs):
    args = {
        "service_target": "127.0.0.1:3000",
        "monitor_target": "127.0.0.1:9108",
        "alertmanager_target": "127.0.0.1:9093",
        "webhook_url": "http://127.0.0.1:9095/alerts",
    } | kwargs
    with pytest.raises(ValueError):
        render.render_configs(tmp_path, **args)


def test_substitute_keeps_prometheus_templating_and_refuses_unknown_names():
    text = "a: ${A} {{ $labels.model_version }} $value"
    assert render.substitute(text, {"A": "1"}) == "a: 1 {{ $labels.model_version }} $value"
    with pytest.raises(KeyError, match="B"):
        render.substitute("${B}", {})


def test_durations():
    assert render.duration_seconds("1h30m") == 5400
    assert render.seconds_to_duration(1200) == "20m"
    assert render.seconds_to_duration(90) == "90s"
    assert render.seconds_to_duration(7200) == "2h"


def test_cli_reads_settings_from_the_environment(tmp_path, clean_settings_env, monkeypatch):
    monkeypatch.setenv("VIGIL_ALERT_WEBHOOK_URL", "http://127.0.0.1:18080/hook")
    monkeypatch.setenv("VIGIL_PORT", "13001")
    monkeypatch.setenv("VIGIL_DRIFT_INTERVAL_SECONDS", "30")
    out = tmp_path / "rendered"
    result = CliRunner().invoke(render.app, ["--out", str(out), "--for", "0s"])
    assert result.exit_code == 0, result.output
    assert '"http://127.0.0.1:18080/hook"' in (out / "alertmanager.yml").read_text()
    assert '"127.0.0.1:13001"' in (out / "prometheus.yml").read_text()
    rules = (out / "rules" / "vigil.rules.yml").read_text()
    assert ") > 120\n" in rules  # 4 x VIGIL_DRIFT_INTERVAL_SECONDS


def test_cli_help_and_argument_check():
    runner = CliRunner()
    assert "--out" in runner.invoke(render.app, ["--help"]).output
    assert runner.invoke(render.app, []).exit_code != 0


def test_one_declaration_fills_every_placeholder_and_the_docs():
    templates = (render.PROMETHEUS_TEMPLATE, render.RULES_TEMPLATE, render.ALERTMANAGER_TEMPLATE)
    placeholders = {
        name for path in templates for name in render._PLACEHOLDER.findall(path.read_text())
    }
    filled = {
        name
        for p in render.ALERT_PARAMETERS
        for name in p.fill(p.name, p.default)  # every default passes its own check
    }
    addresses = {"SERVICE_TARGET", "MONITOR_TARGET", "ALERTMANAGER_TARGET", "WEBHOOK_URL"}
    retrain = {"RETRAIN_ROUTE", "RETRAIN_RECEIVER"}
    for_clauses = {f"FOR_{alert.upper()}" for alert in render.ALERT_NAMES}
    derived = {"QUALITY_HIGHER_METRICS"}  # from the task, not a parameter
    assert placeholders == filled | addresses | retrain | for_clauses | derived
    docs = render.DOCS.read_text(encoding="utf-8")
    assert render.with_parameters_table(docs) == docs, (
        "docs/alerting.md's parameter table is out of date: run `vigil render configs --committed`"
    )


def test_an_unknown_parameter_is_refused(tmp_path):
    args = {
        "service_target": "127.0.0.1:3000",
        "monitor_target": "127.0.0.1:9108",
        "alertmanager_target": "127.0.0.1:9093",
        "webhook_url": "http://127.0.0.1:9095/alerts",
    }
    with pytest.raises(TypeError, match="group_weight"):
        render.render_configs(tmp_path, group_weight="1s", **args)
    with pytest.raises(TypeError, match="group_wait"):
        render.render_rules(group_wait="1s")


def test_cli_defaults_are_the_declared_ones(tmp_path, clean_settings_env):
    out = tmp_path / "cli"
    result = CliRunner().invoke(render.app, ["--out", str(out)])
    assert result.exit_code == 0, result.output
    paths = render.render_configs(tmp_path / "api", **render.settings_defaults(get_settings()))
    for key, path in paths.items():
        assert (out / path.relative_to(tmp_path / "api")).read_text() == path.read_text(), key
