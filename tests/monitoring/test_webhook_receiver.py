"""monitoring.webhook_receiver: one readable line per alert, over real HTTP."""

from __future__ import annotations

import threading

import httpx
import pytest
from typer.testing import CliRunner

from monitoring import webhook_receiver
from tests.support.rawhttp import BAD_LENGTHS, post_head, raw_status

PAYLOAD = {
    "version": "4",
    "status": "firing",
    "receiver": "vigil-webhook",
    "groupLabels": {"alertname": "FeatureDriftDetected", "model_version": "vigil-model:abc"},
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "FeatureDriftDetected",
                "severity": "warning",
                "model_version": "vigil-model:abc",
                "feature": "mean radius",
            },
            "annotations": {
                "summary": "Feature mean radius drifted for model vigil-model:abc",
                "report": "http://127.0.0.1:9108/reports/latest",
            },
        },
        {
            "status": "resolved",
            "labels": {"alertname": "PredictionServiceDown", "severity": "critical"},
            "annotations": {"summary": "Prediction service 127.0.0.1:3000 is down"},
        },
    ],
}


def test_format_notification_one_line_per_alert():
    lines = webhook_receiver.format_notification(PAYLOAD)
    assert lines == [
        "[FIRING] FeatureDriftDetected severity=warning model_version=vigil-model:abc "
        "feature=mean radius | Feature mean radius drifted for model vigil-model:abc "
        "| report: http://127.0.0.1:9108/reports/latest",
        "[RESOLVED] PredictionServiceDown severity=critical "
        "| Prediction service 127.0.0.1:3000 is down",
    ]


def test_format_alert_tolerates_missing_fields():
    assert webhook_receiver.format_alert({}) == "[?] <no alertname> severity=-"


def test_format_notification_rejects_other_json():
    with pytest.raises(ValueError):
        webhook_receiver.format_notification({"hello": "world"})


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
    assert lines == webhook_receiver.format_notification(PAYLOAD)
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
