"""``make run`` (``python -m stack.run``) on a fresh VIGIL_HOME with every port moved: it trains
the default model, starts everything, answers the README's request, and Ctrl-C (SIGINT) stops
it with exit 0 and no process left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import free_port
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

pytestmark = pytest.mark.integration

STOP_TIMEOUT = 30.0


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
        webhook_port=ports["webhook"],
        alert_webhook_url=f"http://127.0.0.1:{ports['webhook']}/alerts",
        workers=1,
    )
    alerting = bool(shutil.which("prometheus")) and bool(
        shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    )
    started = time.monotonic()
    runner = Proc("stack.run", [sys.executable, "-m", "stack.run"], tmp_path / "run.log", env)
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
        else:
            assert "prometheus-alertmanager" in runner.tail(), runner.tail()
        print(f"[stack.run] trained and up in {time.monotonic() - started:.1f} s")

        # Every process the runner started, and theirs (bentoml's workers, ...).
        children = set(descendants(runner.pid))
        names = {pid: cmdline(pid) for pid in children}
        print(f"[stack.run] {len(children)} processes below the runner: {names}")
        assert len(children) >= (6 if alerting else 3), names

        runner.popen.send_signal(signal.SIGINT)
        stop_started = time.monotonic()
        try:
            code = runner.popen.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"stack.run did not exit within {STOP_TIMEOUT:g}s\n{runner.describe()}")
        stopped_in = time.monotonic() - stop_started
        print(f"[stack.run] stopped in {stopped_in:.1f} s")
        assert code == 0, runner.describe()
        survivors = {pid: names[pid] for pid in children if alive(pid)}
        assert not survivors, f"still running after stack.run exited: {survivors}"
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
