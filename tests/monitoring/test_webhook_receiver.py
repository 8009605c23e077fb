"""monitoring.webhook_receiver: one readable line per notification, over real HTTP."""

from __future__ import annotations

import threading

import httpx
import pytest
from typer.testing import CliRunner

from monitoring import webhook_receiver
from tests.support.rawhttp import BAD_LENGTHS, post_head, raw_status

REPORT = "http://127.0.0.1:9108/reports/latest"


def _alert(name: str, status: str = "firing", summary: str = "", **labels: str) -> dict:
    annotations = {"summary": summary or f"{name} summary"}
    if name.endswith("DriftDetected"):
        annotations["report"] = REPORT
    return {
        "status": status,
        "labels": {"alertname": name, "severity": "warning", **labels},
        "annotations": annotations,
    }


def _payload(*alerts: dict) -> dict:
    firing = any(a["status"] == "firing" for a in alerts)
    return {"version": "4", "status": "firing" if firing else "resolved", "alerts": list(alerts)}


V = "vigil-model:abc"
# One drift event as the drift route sends it: the verdict and its features, in no order.
DRIFT_EVENT = _payload(
    _alert("FeatureDriftDetected", model_version=V, feature="worst area"),
    _alert("DataDriftDetected", summary=f"Data drift detected for model {V}", model_version=V),
    _alert("FeatureDriftDetected", model_version=V, feature="mean radius"),
    _alert("FeatureDriftDetected", model_version=V, feature="mean texture"),
)
PAYLOAD = DRIFT_EVENT  # what the server tests post


def test_one_drift_event_is_one_line_naming_its_features():
    assert webhook_receiver.format_notification(DRIFT_EVENT) == (
        f"[FIRING] DataDriftDetected severity=warning model_version={V} "
        f"| Data drift detected for model {V} | report: {REPORT} "
        "| with 3 FeatureDriftDetected | features: mean radius, mean texture, worst area"
    )


def test_a_single_alert_is_its_own_line():
    alert = _alert("PredictionServiceDown", "resolved", "Prediction service 127.0.0.1:3000 is down")
    alert["labels"]["severity"] = "critical"
    assert webhook_receiver.format_notification(_payload(alert)) == (
        "[RESOLVED] PredictionServiceDown severity=critical "
        "| Prediction service 127.0.0.1:3000 is down"
    )


def test_features_without_the_verdict_and_alerts_resolved_meanwhile():
    payload = _payload(
        _alert("FeatureDriftDetected", model_version=V, feature="mean radius"),
        _alert("FeatureDriftDetected", model_version=V, feature="worst area"),
        _alert("FeatureDriftDetected", "resolved", model_version=V, feature="mean texture"),
    )
    line = webhook_receiver.format_notification(payload)
    assert line.startswith("[FIRING] FeatureDriftDetected severity=warning model_version=")
    assert line.endswith(
        "| with 1 FeatureDriftDetected | features: mean radius, worst area | resolved: mean texture"
    )


def test_one_alert_per_instance_names_the_instances():
    payload = _payload(
        _alert("PredictionServiceDown", instance="a:3000"),
        _alert("PredictionServiceDown", instance="b:3000"),
    )
    assert webhook_receiver.format_notification(payload).endswith(
        "| with 1 PredictionServiceDown | instances: a:3000, b:3000"
    )


def test_format_alert_tolerates_missing_fields():
    assert webhook_receiver.format_alert({}) == "[?] <no alertname> severity=-"
    assert webhook_receiver.format_notification({"alerts": [{}]}) == (
        "[?] <no alertname> severity=-"
    )


@pytest.mark.parametrize("payload", [{"hello": "world"}, {"alerts": []}, {"alerts": "x"}])
def test_format_notification_rejects_other_json(payload):
    with pytest.raises(ValueError):
        webhook_receiver.format_notification(payload)


@pytest.fixture
def receiver():
    lines: list[str] = []
    server = webhook_receiver.make_server("127.0.0.1", 0, emit=lines.append)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", lines
    server.shutdown()
    server.server_close()


def test_server_prints_posted_alerts(receiver):
    base, lines = receiver
    response = httpx.post(f"{base}/alerts", json=PAYLOAD, timeout=5)
    assert response.status_code == 200
    assert lines == [webhook_receiver.format_notification(PAYLOAD)]
    assert httpx.get(f"{base}/", timeout=5).status_code == 200


def test_server_answers_400_to_garbage(receiver):
    base, lines = receiver
    assert httpx.post(f"{base}/alerts", content=b"{not json", timeout=5).status_code == 400
    assert httpx.post(f"{base}/alerts", json=[1, 2], timeout=5).status_code == 400
    assert lines == []


@pytest.mark.parametrize(("length", "status"), BAD_LENGTHS)
def test_content_length_is_bounded_over_a_raw_socket(receiver, length, status):
    base, lines = receiver
    request = post_head("/alerts", content_length=length) + b"{}"
    assert raw_status(base, request) == status
    assert lines == []


def test_cli_help():
    result = CliRunner().invoke(webhook_receiver.app, ["--help"])
    assert result.exit_code == 0
    assert "--port" in result.output
