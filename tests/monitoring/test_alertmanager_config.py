"""Alertmanager config: amtool checks, routing, and a real Alertmanager posting to a webhook."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from monitoring import webhook_receiver
from tests.conftest import free_port, need_binary
from tests.support.alerting import (
    Webhook,
    notifications_due,
    start_alertmanager,
    wait_ready,
)
from tests.support.processes import wait_until
from tests.support.smtp import SmtpSink
from vigil.render import alerting as render

REPO = Path(__file__).resolve().parents[2]
AM_DIR = REPO / "monitoring" / "alertmanager"
INHIBITED = {"HighPredictionErrorRate", "HighPredictionLatency", "InferenceLogFailures"}


def _amtool_check(path: Path) -> None:
    amtool = need_binary("amtool")
    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
@pytest.mark.parametrize("name", ["alertmanager.yml", "alertmanager.compose.yml"])
def test_amtool_check_config(name):
    _amtool_check(AM_DIR / name)


def _documented_example() -> str:
    doc = (REPO / "docs" / "alerting.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.DOTALL)
    example = next(block for block in blocks if "slack_configs" in block)
    assert "email_configs" in example
    return example


@pytest.mark.integration
def test_documented_slack_and_email_example_is_valid(tmp_path):
    path = tmp_path / "alertmanager.yml"
    path.write_text(_documented_example())
    _amtool_check(path)


def test_commented_receivers_are_present_and_no_secrets_are_committed():
    text = (AM_DIR / "alertmanager.yml").read_text()
    assert "#   slack_configs:" in text and "#   email_configs:" in text
    assert "hooks.slack.com" not in text
    assert not re.search(r"^\s*(api_url|auth_password):", text, flags=re.MULTILINE)


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("alertmanager.yml", "http://127.0.0.1:9095/alerts"),
        ("alertmanager.compose.yml", "http://webhook:9095/alerts"),
    ],
)
def test_routing_grouping_and_inhibition(name, url):
    config = yaml.safe_load((AM_DIR / name).read_text())
    route = config["route"]
    assert route["group_by"] == ["alertname", "model_version"]
    assert route["group_wait"] == "30s"
    # One drift event, one notification: the verdict and its features, by model version.
    (drift,) = route["routes"]
    assert drift == {
        "matchers": ['alertname=~"DataDriftDetected|FeatureDriftDetected"'],
        "group_by": ["model_version"],
        "group_wait": render.PARAMETERS["drift_group_wait"].default,
    }
    (receiver,) = config["receivers"]
    assert receiver["name"] == route["receiver"]
    (webhook,) = receiver["webhook_configs"]
    assert webhook == {"url": url, "send_resolved": True}
    (inhibit,) = config["inhibit_rules"]
    assert inhibit["source_matchers"] == ['alertname="PredictionServiceDown"']
    (target,) = inhibit["target_matchers"]
    assert set(target.split('"')[1].split("|")) == INHIBITED


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def alertmanager(tmp_path, webhook):
    """A real Alertmanager on a free port, rendered config with 1 s grouping (the drift
    route's too); its base URL."""
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        render.render_alertmanager(
            webhook_url=webhook.url,
            group_wait="1s",
            drift_group_wait="1s",
            group_interval="1s",
            repeat_interval="1h",
        )
    )
    port = free_port()
    proc = start_alertmanager(config, tmp_path / "data", port, tmp_path / "alertmanager.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base, timeout=20)
        yield base
    finally:
        proc.stop()


def _post(base: str, alerts: list[dict]) -> None:
    response = httpx.post(f"{base}/api/v2/alerts", json=alerts, timeout=5)
    assert response.status_code == 200, response.text


def _alert(name: str, **labels: str) -> dict:
    return {
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} test"},
        "generatorURL": "http://127.0.0.1:9090/graph",
    }


@pytest.mark.integration
def test_alertmanager_delivers_groups_inhibits_and_resolves(alertmanager, webhook):
    drift = _alert("DataDriftDetected", severity="warning", model_version="vigil-model:t1")
    _post(
        alertmanager,
        [
            drift,
            _alert("PredictionServiceDown", severity="critical", job="vigil-service"),
            _alert("HighPredictionErrorRate", severity="critical", endpoint="/predict"),
        ],
    )

    def received(status: str, name: str) -> bool:
        return bool(webhook.alerts(name, status=status))

    wait_until(lambda: received("firing", "DataDriftDetected"), 15, "the drift notification")
    wait_until(lambda: received("firing", "PredictionServiceDown"), 15, "the outage notification")

    with webhook.lock:
        drift_payload = next(
            p
            for p in webhook.payloads
            if p["alerts"][0]["labels"]["alertname"] == "DataDriftDetected"
        )
    assert drift_payload["groupLabels"] == {"model_version": "vigil-model:t1"}
    assert drift_payload["alerts"][0]["labels"]["model_version"] == "vigil-model:t1"

    # send_resolved: ending the alert produces a "resolved" notification.
    _post(alertmanager, [{**drift, "endsAt": datetime.now(UTC).isoformat()}])
    wait_until(lambda: received("resolved", "DataDriftDetected"), 15, "the resolved notification")

    # The inhibited alert's group was due with the outage's (same group_wait, same post), and a
    # group interval has passed since: the inhibited alert never arrived.
    assert not any(r.labels["alertname"] in INHIBITED for r in webhook.received)


@pytest.mark.integration
def test_retraining_trigger_route_is_added_only_when_enabled(tmp_path):
    from vigil.render.alerting import render_alertmanager

    off = yaml.safe_load(render_alertmanager(webhook_url="http://127.0.0.1:9095/alerts"))
    assert all(r.get("receiver") != "vigil-retrain" for r in off["route"]["routes"])
    token_file = tmp_path / "retrain_token"
    token_file.write_text("t" * 32)
    text = render_alertmanager(
        webhook_url="http://127.0.0.1:9095/alerts",
        retrain_url="http://127.0.0.1:9096/retrain",
        retrain_token_file=token_file,
    )
    on = yaml.safe_load(text)
    route, drift = on["route"]["routes"]
    assert "receiver" not in drift  # drift events still reach the people's webhook
    assert route["receiver"] == "vigil-retrain" and route["continue"] is True
    assert "DataDriftDetected|ModelQualityDrop" in route["matchers"][0]
    receivers = {r["name"]: r for r in on["receivers"]}
    (retrain,) = receivers["vigil-retrain"]["webhook_configs"]
    assert retrain["url"] == "http://127.0.0.1:9096/retrain"
    assert retrain["http_config"]["authorization"] == {
        "type": "Bearer",
        "credentials_file": str(token_file),
    }
    assert "t" * 32 not in text
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    _amtool_check(path)


DRIFTED = ("mean radius", "mean texture", "worst area")


def _drift_event(version: str) -> list[dict]:
    verdict = _alert("DataDriftDetected", severity="warning", model_version=version)
    verdict["annotations"] |= {
        "description": f"Drifted features: {'; '.join(DRIFTED)}; the report shows them.",
        "runbook": "docs/runbook.md#datadriftdetected",
        "report": "http://127.0.0.1:9108/reports/latest",
    }
    features = [
        _alert("FeatureDriftDetected", severity="warning", model_version=version, feature=f)
        for f in DRIFTED
    ]
    return [verdict, *features]


@pytest.mark.integration
def test_documented_example_sends_one_message_per_drift_event(tmp_path, webhook):
    """The docs' Slack and email example in a real Alertmanager: one drift event (the verdict
    and three features) is one Slack message, one email and one webhook notification, each
    naming the features; a critical alert goes to Slack and the webhook."""
    slack, smtp = Webhook(), SmtpSink()
    try:
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        (secrets / "slack_webhook_url").write_text(slack.url + "\n")
        (secrets / "smtp_password").write_text("not-used-without-auth\n")
        config = (
            _documented_example()
            .replace("/run/secrets/", f"{secrets}/")
            .replace("smtp.example.com:587", smtp.address)
            .replace("require_tls: true", "require_tls: false")
            .replace("http://127.0.0.1:9095/alerts", webhook.url)
            .replace("group_wait: 30s", "group_wait: 1s")
            .replace("group_wait: 10s", "group_wait: 1s")
        )
        path = tmp_path / "alertmanager.yml"
        path.write_text(config)
        port = free_port()
        proc = start_alertmanager(path, tmp_path / "data", port, tmp_path / "alertmanager.log")
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(proc, base, timeout=20)
            version = "vigil-model:t1"
            outage = _alert("PredictionServiceDown", severity="critical", job="vigil-service")
            _post(base, [*_drift_event(version), outage])

            def delivered() -> bool:
                with webhook.lock, slack.lock, smtp.lock:
                    return len(webhook.payloads) >= 2 and len(slack.payloads) >= 2 and smtp.messages

            wait_until(delivered, 20, "drift and outage notifications at all receivers", [proc])

            def all_due_arrived() -> bool:
                """Every group's first notification, so anything sent twice, has arrived."""
                due = notifications_due(base, path)
                with webhook.lock, slack.lock, smtp.lock:
                    got = len(webhook.payloads) + len(slack.payloads) + len(smtp.messages)
                return bool(due) and got >= due

            wait_until(all_due_arrived, 20, "every group's first notification", [proc])
        finally:
            proc.stop()

        drift_hooks = [
            p for p in webhook.payloads if p["groupLabels"] == {"model_version": version}
        ]
        assert len(drift_hooks) == 1, webhook.payloads
        (hook,) = drift_hooks
        assert len(hook["alerts"]) == 1 + len(DRIFTED)
        line = webhook_receiver.format_notification(hook)
        assert line.startswith("[FIRING] DataDriftDetected ")
        assert f"features: {', '.join(DRIFTED)}" in line
        assert {a["labels"]["alertname"] for p in webhook.payloads for a in p["alerts"]} == {
            "DataDriftDetected",
            "FeatureDriftDetected",
            "PredictionServiceDown",
        }

        messages = [a for p in slack.payloads for a in p["attachments"]]
        assert sorted(m["title"] for m in messages) == [
            "[FIRING] Data drift vigil-model:t1",
            "[FIRING] PredictionServiceDown ",
        ], messages
        (drift_message,) = [m for m in messages if "Data drift" in m["title"]]
        assert f"Features: {'; '.join(DRIFTED)};" in drift_message["text"]
        assert drift_message["text"].count("DataDriftDetected test") == 1
        assert "FeatureDriftDetected test" not in drift_message["text"]

        (mail,) = smtp.messages
        assert mail["Subject"] == "[FIRING] Data drift vigil-model:t1"
        body = mail.get_body(("plain",)).get_content()
        assert f"Features: {'; '.join(DRIFTED)};" in body
        assert "report: http://127.0.0.1:9108/reports/latest" in body
    finally:
        slack.close()
        smtp.close()
