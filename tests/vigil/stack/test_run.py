"""``make run`` (``vigil run``) on a fresh VIGIL_HOME with every port moved: it trains
the default model, starts everything, answers the README's request, and Ctrl-C (SIGINT) stops
it with exit 0 and no process left behind. Before that, its start-up: every derived address
follows the port it derives from, and settings that disagree, or a port another program holds,
stop it at once with one line each."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from tests.conftest import free_port, need_binary
from tests.support.processes import (
    REPO,
    Proc,
    alive,
    base_env,
    cmdline,
    descendants,
    http_ok,
    wait_until,
)
from vigil.stack import run

STOP_TIMEOUT = 30.0
# Paths only: the plan names the binaries, nothing here runs them.
BINARIES = ("/usr/bin/prometheus", "/usr/bin/prometheus-alertmanager")


def _settings(tmp_path, **overrides):
    from vigil.settings import get_settings

    return get_settings(home=tmp_path / "home", **overrides)


def _planned(settings) -> dict[str, run.Component]:
    return {c.name: c for c in run.components(settings, *BINARIES)}


def test_every_derived_address_follows_its_port(tmp_path):
    settings = _settings(
        tmp_path,
        port=13000,
        monitor_port=19108,
        prometheus_port=19090,
        alertmanager_port=19093,
        webhook_port=9495,
        retrain_trigger_enabled=True,
        retrain_trigger_port=19096,
        retrain_trigger_token="t" * 32,
    )
    assert settings.resolved_alert_webhook_url == "http://127.0.0.1:9495/alerts"
    planned = _planned(settings)
    assert {name: c.port for name, c in planned.items()} == {
        "service": 13000,
        "monitor": 19108,
        "retrain-trigger": 19096,
        "webhook-receiver": 9495,
        "alertmanager": 19093,
        "prometheus": 19090,
    }
    assert run.address_problems(settings, list(planned.values())) == []
    run.render_alerting(settings)
    conf = settings.home_dir / "config"
    alertmanager = yaml.safe_load((conf / "alertmanager.yml").read_text())
    urls = {
        r["name"]: [w["url"] for w in r.get("webhook_configs", [])]
        for r in alertmanager["receivers"]
    }
    assert "http://127.0.0.1:9495/alerts" in sum(urls.values(), []), urls
    assert "http://127.0.0.1:19096/retrain" in sum(urls.values(), []), urls
    prometheus = (conf / "prometheus.yml").read_text()
    for target in ("127.0.0.1:13000", "127.0.0.1:19108", "127.0.0.1:19093"):
        assert f'"{target}"' in prometheus, target
    rules = (conf / "rules" / "vigil.rules.yml").read_text()
    assert "http://127.0.0.1:19108/reports/latest" in rules
    assert "9108/" not in rules.replace("19108/", "")
    # The config files the alerting daemons are started with are the ones rendered.
    assert f"--config.file={conf / 'alertmanager.yml'}" in planned["alertmanager"].argv
    assert f"--config.file={conf / 'prometheus.yml'}" in planned["prometheus"].argv


def test_alerts_posted_elsewhere_start_no_local_receiver(tmp_path):
    settings = _settings(tmp_path, alert_webhook_url="https://hooks.example.com/vigil")
    assert "webhook-receiver" not in _planned(settings)
    assert run.address_problems(settings, run.components(settings, *BINARIES)) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"webhook_port": 9495, "alert_webhook_url": "http://127.0.0.1:9095/alerts"},
            "VIGIL_ALERT_WEBHOOK_URL (http://127.0.0.1:9095/alerts) is on this machine but "
            "not on VIGIL_WEBHOOK_PORT (9495)",
        ),
        (
            {"webhook_port": 9495, "alert_webhook_url": "http://localhost/alerts"},
            "not on VIGIL_WEBHOOK_PORT (9495)",
        ),
        ({"alert_webhook_url": "http://127.0.0.1:99999/x"}, "is not an http(s) URL"),
        ({"port": 9093}, "VIGIL_PORT and VIGIL_ALERTMANAGER_PORT are both 9093"),
        ({"monitor_port": 9095}, "VIGIL_MONITOR_PORT and VIGIL_WEBHOOK_PORT are both 9095"),
    ],
)
def test_addresses_that_disagree_are_one_line_each(tmp_path, overrides, expected):
    settings = _settings(tmp_path, **overrides)
    problems = run.address_problems(settings, run.components(settings, *BINARIES))
    assert len(problems) == 1 and expected in problems[0], problems
    assert "\n" not in problems[0]


def _make_run(tmp_path, timeout: float = 60, **vigil) -> subprocess.CompletedProcess:
    env = base_env(home=tmp_path / "home", **vigil)
    return subprocess.run(
        [sys.executable, "-m", "vigil", "run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.integration
def test_make_run_refuses_a_webhook_url_that_disagrees_with_the_port(tmp_path):
    # The reported case: another program held 9095, the receiver was moved to 9495, and the
    # alerts still went to 9095.
    ports = {"port": free_port(), "monitor_port": free_port()}
    done = _make_run(
        tmp_path, webhook_port=9495, alert_webhook_url="http://127.0.0.1:9095/alerts", **ports
    )
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "VIGIL_ALERT_WEBHOOK_URL" in lines[0], done.stderr
    assert "VIGIL_WEBHOOK_PORT (9495)" in lines[0]
    assert not (tmp_path / "home").exists()  # nothing trained, nothing started


@pytest.mark.integration
@pytest.mark.parametrize("component", ["service", "webhook-receiver"])
def test_make_run_says_which_port_is_taken_before_starting_anything(tmp_path, component):
    settings = {
        "port": free_port(),
        "monitor_port": free_port(),
        "prometheus_port": free_port(),
        "alertmanager_port": free_port(),
        "webhook_port": free_port(),
    }
    setting = {"service": "port", "webhook-receiver": "webhook_port"}[component]
    if component == "webhook-receiver":
        for name in ("prometheus", "alertmanager"):
            need_binary(*(run.PROMETHEUS if name == "prometheus" else run.ALERTMANAGER))
    with socket.socket() as holder:  # another program on the port
        holder.bind(("127.0.0.1", settings[setting]))
        holder.listen()
        done = _make_run(tmp_path, **settings)
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"cannot start the {component}: 127.0.0.1:{settings[setting]}" in lines[0]
    assert f"VIGIL_{setting.upper()}" in lines[0]
    assert "started" not in done.stdout and not (tmp_path / "home").exists()


@pytest.mark.integration
def test_make_run_trains_serves_and_stops_cleanly_on_sigint(tmp_path):
    home = tmp_path / "vigil-home"  # fresh: no production model yet
    ports = {
        name: free_port()
        for name in ("port", "monitor_port", "prometheus_port", "alertmanager_port", "webhook")
    }
    env = base_env(
        home=home,
        host="127.0.0.1",
        port=ports["port"],
        monitor_port=ports["monitor_port"],
        prometheus_port=ports["prometheus_port"],
        alertmanager_port=ports["alertmanager_port"],
        webhook_port=ports["webhook"],  # the webhook URL follows it
        workers=1,
    )
    alerting = bool(shutil.which("prometheus")) and bool(
        shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    )
    started = time.monotonic()
    runner = Proc("vigil run", [sys.executable, "-m", "vigil", "run"], tmp_path / "run.log", env)
    children: set[int] = set()
    try:
        service = f"http://127.0.0.1:{ports['port']}"
        wait_until(lambda: http_ok(f"{service}/readyz"), 120, "the service's /readyz", [runner])
        log = runner.tail(100_000)
        assert "no production model yet: training the default model" in log, log
        from vigil.registry.store import Registry
        from vigil.settings import get_settings

        assert Registry(get_settings(home=home)).production_tag().startswith("vigil-model:")

        body = json.loads((REPO / "examples" / "request.json").read_text())
        answer = httpx.post(f"{service}/predict", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == 2 == len(body["instances"])

        monitor = f"http://127.0.0.1:{ports['monitor_port']}/metrics"
        wait_until(lambda: http_ok(monitor), 60, "the monitor's /metrics", [runner])
        assert "vigil_drift_runs_total" in httpx.get(monitor, timeout=5).text
        if alerting:
            for name in ("prometheus_port", "alertmanager_port"):
                ready = f"http://127.0.0.1:{ports[name]}/-/ready"
                wait_until(lambda u=ready: http_ok(u), 60, ready, [runner])
            webhook = f"http://127.0.0.1:{ports['webhook']}/"
            wait_until(lambda: http_ok(webhook), 30, "the webhook receiver", [runner])
            rendered = (home / "config" / "alertmanager.yml").read_text()
            assert f"http://127.0.0.1:{ports['webhook']}/alerts" in rendered
        else:
            assert "prometheus-alertmanager" in runner.tail(), runner.tail()
        print(f"[vigil run] trained and up in {time.monotonic() - started:.1f} s")

        # Once everything answers, the runner says where, and each address it prints answers.
        wait_until(lambda: "[vigil] try: make traffic" in runner.tail(), 60, "the ready list",
                   [runner])  # fmt: skip
        listed = runner.tail(100_000).split("[vigil] ready:\n", 1)[1].split("[vigil] try:")[0]
        urls = dict(line.split()[1:3] for line in listed.splitlines())
        assert urls["service"] == service
        reports = f"http://127.0.0.1:{ports['monitor_port']}/reports/latest"
        assert urls["monitor"] == reports
        if alerting:
            prometheus = f"http://127.0.0.1:{ports['prometheus_port']}"
            assert urls["prometheus"] in (f"{prometheus}/classic/alerts", f"{prometheus}/alerts")
            assert httpx.get(urls["prometheus"], timeout=5).status_code == 200
            assert urls["alertmanager"] == f"http://127.0.0.1:{ports['alertmanager_port']}"
        assert "Context impl" not in runner.tail(100_000)  # no Alembic INFO lines

        # Every process the runner started, and theirs (bentoml's workers, ...).
        children = set(descendants(runner.pid))
        names = {pid: cmdline(pid) for pid in children}
        print(f"[vigil run] {len(children)} processes below the runner: {names}")
        assert len(children) >= (6 if alerting else 3), names

        runner.popen.send_signal(signal.SIGINT)
        stop_started = time.monotonic()
        try:
            code = runner.popen.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"vigil run did not exit within {STOP_TIMEOUT:g}s\n{runner.describe()}")
        stopped_in = time.monotonic() - stop_started
        print(f"[vigil run] stopped in {stopped_in:.1f} s")
        assert code == 0, runner.describe()
        survivors = {pid: names[pid] for pid in children if alive(pid)}
        assert not survivors, f"still running after vigil run exited: {survivors}"
        assert "[vigil] stopped service" in runner.tail()
    except BaseException:
        print(runner.describe())
        for name in ("prometheus", "alertmanager"):
            path = home / "logs" / f"{name}.log"
            if path.exists():
                print(f"----- {path} -----\n{path.read_text(errors='replace')[-2000:]}")
        raise
    finally:
        runner.stop(10)
        for pid in children | set(descendants(runner.pid)):  # only what this test started
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_readiness_lists_components_only_once_each_answers(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Ready(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/ready" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        up = run.Component("up", [], port, ready="/ready", shown="/x  (note)")
        down = run.Component("down", [], free_port(), ready="/ready")
        now = [0.0]
        readiness = run.Readiness([up, down], clock=lambda: now[0])
        now[0] = 1.0
        assert readiness.poll() is False and list(readiness.pending) == ["down"]
        assert readiness.late() == []
        now[0] = run.READY_WITHIN + 1
        assert readiness.late() == ["down"] and readiness.late() == []  # said once
        lines = run.ready_lines(_settings(tmp_path), [up], alerting=False)
        assert lines == ["ready:", f"  up              http://127.0.0.1:{port}/x  (note)"]
    finally:
        server.shutdown()
        server.server_close()
