"""The retraining webhook: starts real runs on the right alerts, one at a time, rate-limited."""

from __future__ import annotations

import json
import sys
import threading

import httpx
import pytest

from tests.conftest import free_port
from tests.support.cli import run_command
from tests.support.rawhttp import BAD_LENGTHS, post_head, raw_status
from training.trigger import RetrainTrigger, make_server


def alert(name: str, status: str = "firing") -> dict:
    return {"alerts": [{"status": status, "labels": {"alertname": name}}]}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.mark.integration
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


@pytest.mark.integration
def test_one_run_at_a_time(tmp_path):
    # The run lasts until the test lets it end (the file appears), however slow the machine;
    # a minute at most, should the test fail before.
    done = tmp_path / "done"
    wait_for_done = (
        "import os, time\nend = time.monotonic() + 60\n"
        f"while not os.path.exists({str(done)!r}) and time.monotonic() < end: time.sleep(0.02)"
    )
    trigger = RetrainTrigger([sys.executable, "-c", wait_for_done], min_interval=0)
    assert trigger.handle(alert("DataDriftDetected"))["started"]
    busy = trigger.handle(alert("DataDriftDetected"))
    assert not busy["started"] and "in progress" in busy["reason"]
    done.touch()
    trigger.wait(30)


TOKEN = "s3cret-token-for-tests-0123456789"
# How often the server's loop looks for a shutdown: its default half second is paid by every
# test that stops one.
POLL_SECONDS = 0.02


def serve(server) -> None:
    threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,), daemon=True).start()


@pytest.fixture
def webhook_url():
    """The trigger's real HTTP server on a free port (command: a no-op run); its URL."""
    trigger = RetrainTrigger([sys.executable, "-c", "pass"], min_interval=3600)
    port = free_port()
    server = make_server(trigger, "127.0.0.1", port, TOKEN)
    serve(server)
    yield f"http://127.0.0.1:{port}/retrain"
    server.shutdown()
    server.server_close()
    trigger.wait(30)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.integration
def test_http_webhook(webhook_url):
    first = httpx.post(webhook_url, json=alert("DataDriftDetected"), headers=AUTH, timeout=10)
    assert first.status_code == 202 and first.json()["started"] is True
    second = httpx.post(webhook_url, json=alert("DataDriftDetected"), headers=AUTH, timeout=10)
    assert second.json()["started"] is False
    json_headers = {**AUTH, "Content-Type": "application/json"}
    for body in (b"{nope", b"[1]", b"[" * 100_000, b"\xff"):
        bad = httpx.post(webhook_url, content=body, headers=json_headers, timeout=10)
        assert bad.status_code == 400 and "error" in bad.json(), body[:10]
    odd = httpx.post(webhook_url, content=b'{"alerts": [1, {"labels": 2}]}', headers=json_headers)
    assert odd.status_code == 202 and odd.json()["started"] is False


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token-of-the-same-size-00"}, 401),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": f"Bearer {TOKEN}x"}, 401),
        # A form post, which any web page may send to another origin without asking.
        ({**AUTH, "Content-Type": "text/plain"}, 415),
        ({**AUTH, "Content-Type": "application/x-www-form-urlencoded"}, 415),
    ],
)
def test_only_alertmanager_can_start_a_run(webhook_url, headers, status):
    answer = httpx.post(
        webhook_url, content=json.dumps(alert("DataDriftDetected")), headers=headers, timeout=10
    )
    assert answer.status_code == status, answer.text
    if status == 401:
        assert answer.headers["www-authenticate"].startswith("Bearer")


def test_only_its_own_path_and_method(webhook_url):
    other = webhook_url.replace("/retrain", "/anything")
    assert httpx.post(other, json=alert("DataDriftDetected"), headers=AUTH).status_code == 404
    assert httpx.get(webhook_url).status_code == 405


def test_a_short_token_is_refused():
    with pytest.raises(ValueError, match="token"):
        make_server(RetrainTrigger(["true"], 0), "127.0.0.1", free_port(), "short")


@pytest.mark.integration
def test_the_command_refuses_to_start_without_a_token(tmp_path):
    done = run_command(
        "training.trigger", "--port", str(free_port()), home=tmp_path, subprocess_=True
    )
    assert done.returncode == 2 and "VIGIL_RETRAIN_TRIGGER_TOKEN" in done.stderr


def test_settings_refuse_an_enabled_trigger_without_a_token():
    from vigil.settings import get_settings

    with pytest.raises(ValueError, match="VIGIL_RETRAIN_TRIGGER_TOKEN"):
        get_settings(retrain_trigger_enabled=True)
    assert get_settings(retrain_trigger_enabled=True, retrain_trigger_token=TOKEN)


HEADERS = ("Content-Type: application/json", f"Authorization: Bearer {TOKEN}")


@pytest.mark.parametrize(("length", "status"), BAD_LENGTHS)
def test_content_length_is_bounded_over_a_raw_socket(webhook_url, length, status):
    request = post_head("/retrain", *HEADERS, content_length=length) + b"{}"
    assert raw_status(webhook_url, request) == status


def test_a_body_shorter_than_announced_is_a_400(webhook_url):
    request = post_head("/retrain", *HEADERS, content_length="100") + b"{}"
    assert raw_status(webhook_url, request, half_close=True) == 400


def test_the_token_is_checked_before_the_body_is_read(webhook_url):
    # An unbounded length from a caller without the token: refused without reading.
    request = post_head("/retrain", "Content-Type: application/json", content_length="-1")
    assert raw_status(webhook_url, request) == 401


@pytest.mark.integration
def test_alertmanager_starts_a_run_with_its_token(tmp_path):
    from tests.support.alerting import start_alertmanager, wait_ready
    from tests.support.processes import wait_until
    from vigil.render.alerting import render_configs

    marker = tmp_path / "ran"
    trigger = RetrainTrigger(
        [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('x')"], min_interval=3600
    )
    port, am_port = free_port(), free_port()
    server = make_server(trigger, "127.0.0.1", port, TOKEN)
    serve(server)
    paths = render_configs(
        tmp_path / "conf",
        service_target="127.0.0.1:1",
        monitor_target="127.0.0.1:2",
        alertmanager_target=f"127.0.0.1:{am_port}",
        webhook_url="http://127.0.0.1:9/alerts",
        group_wait="1s",
        group_interval="1s",
        retrain_url=f"http://127.0.0.1:{port}/retrain",
        retrain_token=TOKEN,
    )
    token_file = paths["alertmanager"].parent / "retrain_token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert TOKEN not in paths["alertmanager"].read_text()
    proc = start_alertmanager(
        paths["alertmanager"], tmp_path / "data", am_port, tmp_path / "alertmanager.log"
    )
    base = f"http://127.0.0.1:{am_port}"
    try:
        wait_ready(proc, base, timeout=30)
        posted = httpx.post(
            f"{base}/api/v2/alerts",
            json=[{"labels": {"alertname": "DataDriftDetected", "model_version": "m"}}],
            timeout=10,
        )
        assert posted.status_code == 200, posted.text
        wait_until(lambda: trigger.runs == 1, 30, "Alertmanager's call to the trigger", [proc])
        assert trigger.wait(30) == 0 and marker.read_text() == "x"
    finally:
        proc.stop()
        server.shutdown()
        server.server_close()


@pytest.mark.integration
def test_drift_alert_runs_a_real_retraining(trained_home):
    from tests.training.test_retrain import drifted_traffic, log_with_labels
    from training.trigger import RETRAIN_COMMAND
    from vigil.registry.store import Registry
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
