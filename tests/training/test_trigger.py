"""The retraining webhook: starts real runs on the right alerts, one at a time, rate-limited."""

from __future__ import annotations

import sys
import threading

import httpx

from tests.conftest import free_port
from training.trigger import RetrainTrigger, make_server


def alert(name: str, status: str = "firing") -> dict:
    return {"alerts": [{"status": status, "labels": {"alertname": name}}]}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_only_firing_drift_or_quality_alerts_start_a_run(tmp_path):
    marker = tmp_path / "ran"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x')"]
    clock = Clock()
    trigger = RetrainTrigger(command, min_interval=60, clock=clock)
    assert not trigger.handle(alert("PredictionServiceDown"))["started"]
    assert not trigger.handle(alert("DataDriftDetected", "resolved"))["started"]
    assert trigger.handle(alert("ModelQualityDrop"))["started"]
    assert trigger.wait(30) == 0 and marker.read_text() == "x"

    limited = trigger.handle(alert("DataDriftDetected"))
    assert not limited["started"] and "rate limited" in limited["reason"]
    clock.now += 61
    assert trigger.handle(alert("DataDriftDetected"))["started"]
    assert trigger.wait(30) == 0 and marker.read_text() == "xx"


def test_one_run_at_a_time(tmp_path):
    trigger = RetrainTrigger([sys.executable, "-c", "import time; time.sleep(2)"], min_interval=0)
    assert trigger.handle(alert("DataDriftDetected"))["started"]
    busy = trigger.handle(alert("DataDriftDetected"))
    assert not busy["started"] and "in progress" in busy["reason"]
    trigger.wait(30)


def test_http_webhook(tmp_path):
    trigger = RetrainTrigger([sys.executable, "-c", "pass"], min_interval=3600)
    port = free_port()
    server = make_server(trigger, "127.0.0.1", port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}/retrain"
        first = httpx.post(url, json=alert("DataDriftDetected"), timeout=10)
        assert first.status_code == 202 and first.json()["started"] is True
        second = httpx.post(url, json=alert("DataDriftDetected"), timeout=10)
        assert second.json()["started"] is False
        bad = httpx.post(url, content=b"{nope", timeout=10)
        assert bad.status_code == 400
    finally:
        server.shutdown()
        server.server_close()
        trigger.wait(30)


def test_drift_alert_runs_a_real_retraining(trained_home):
    from tests.training.test_retrain import drifted_traffic, log_with_labels
    from training.trigger import RETRAIN_COMMAND
    from vigil.registry import Registry
    from vigil.settings import get_settings

    settings = get_settings()
    parent = Registry(settings).production_tag()
    rows, labels = drifted_traffic(400)
    log_with_labels(settings, parent, rows, labels)
    trigger = RetrainTrigger(RETRAIN_COMMAND, min_interval=3600)
    assert trigger.handle(alert("DataDriftDetected"))["started"]
    assert trigger.wait(120) == 0
    child = Registry(settings).load_production()
    assert child.tag != parent and child.contract["lineage"]["parent"] == parent
