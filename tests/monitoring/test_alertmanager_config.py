"""Alertmanager config: amtool checks, routing, and a real Alertmanager posting to a webhook."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from monitoring import render
from tests.conftest import free_port, need_binary

REPO = Path(__file__).resolve().parents[2]
AM_DIR = REPO / "monitoring" / "alertmanager"
INHIBITED = {"HighPredictionErrorRate", "HighPredictionLatency", "InferenceLogFailures"}


def _amtool_check(path: Path) -> None:
    amtool = need_binary("amtool")
    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["alertmanager.yml", "alertmanager.compose.yml"])
def test_amtool_check_config(name):
    _amtool_check(AM_DIR / name)


def test_documented_slack_and_email_example_is_valid(tmp_path):
    doc = (REPO / "docs" / "alerting.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.DOTALL)
    example = next(block for block in blocks if "slack_configs" in block)
    assert "email_configs" in example
    path = tmp_path / "alertmanager.yml"
    path.write_text(example)
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
    (receiver,) = config["receivers"]
    assert receiver["name"] == route["receiver"]
    (webhook,) = receiver["webhook_configs"]
    assert webhook == {"url": url, "send_resolved": True}
    (inhibit,) = config["inhibit_rules"]
    assert inhibit["source_matchers"] == ['alertname="PredictionServiceDown"']
    (target,) = inhibit["target_matchers"]
    assert set(target.split('"')[1].split("|")) == INHIBITED


class _Capture(ThreadingHTTPServer):
    """The in-test webhook: keeps every JSON payload Alertmanager posts."""

    daemon_threads = True

    def __init__(self) -> None:
        self.payloads: list[dict] = []
        self.lock = threading.Lock()

        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with capture.lock:
                    capture.payloads.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", free_port()), Handler)

    def alerts(self) -> list[tuple[str, dict]]:
        with self.lock:
            return [(a["status"], a["labels"]) for p in self.payloads for a in p["alerts"]]


@pytest.fixture
def webhook():
    server = _Capture()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def alertmanager(tmp_path, webhook):
    """A real Alertmanager on a free port, rendered config with 1 s grouping; its base URL."""
    binary = need_binary("prometheus-alertmanager", "alertmanager")
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        render.render_alertmanager(
            webhook_url=f"http://127.0.0.1:{webhook.server_port}/alerts",
            group_wait="1s",
            group_interval="1s",
            repeat_interval="1h",
        )
    )
    port = free_port()
    log = tmp_path / "alertmanager.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _ready(base), 20, "Alertmanager /-/ready", proc, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_for(check, timeout: float, what: str, proc=None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    detail = log.read_text()[-3000:] if log else ""
    pytest.fail(f"timed out waiting for {what}\n{detail}")


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
        return any(s == status and lab["alertname"] == name for s, lab in webhook.alerts())

    _wait_for(lambda: received("firing", "DataDriftDetected"), 15, "the drift notification")
    _wait_for(lambda: received("firing", "PredictionServiceDown"), 15, "the outage notification")

    with webhook.lock:
        drift_payload = next(
            p
            for p in webhook.payloads
            if p["alerts"][0]["labels"]["alertname"] == "DataDriftDetected"
        )
    assert drift_payload["groupLabels"] == {
        "alertname": "DataDriftDetected",
        "model_version": "vigil-model:t1",
    }
    assert drift_payload["alerts"][0]["labels"]["model_version"] == "vigil-model:t1"

    # send_resolved: ending the alert produces a "resolved" notification.
    _post(alertmanager, [{**drift, "endsAt": datetime.now(UTC).isoformat()}])
    _wait_for(lambda: received("resolved", "DataDriftDetected"), 15, "the resolved notification")

    # By now several group intervals have passed: the inhibited alert never arrived.
    assert not any(lab["alertname"] in INHIBITED for _, lab in webhook.alerts())


def test_retraining_trigger_route_is_added_only_when_enabled(tmp_path):
    from monitoring.render import render_alertmanager

    off = yaml.safe_load(render_alertmanager(webhook_url="http://127.0.0.1:9095/alerts"))
    assert "routes" not in off["route"]
    text = render_alertmanager(
        webhook_url="http://127.0.0.1:9095/alerts", retrain_url="http://127.0.0.1:9096/retrain"
    )
    on = yaml.safe_load(text)
    (route,) = on["route"]["routes"]
    assert route["receiver"] == "vigil-retrain" and route["continue"] is True
    assert "DataDriftDetected|ModelQualityDrop" in route["matchers"][0]
    receivers = {r["name"]: r for r in on["receivers"]}
    assert receivers["vigil-retrain"]["webhook_configs"][0]["url"] == (
        "http://127.0.0.1:9096/retrain"
    )
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    _amtool_check(path)
