"""The first five minutes of a new user, as the README tells them: ``make run``, then
``make traffic`` (no drift alert, ever), then ``make traffic DRIFT=most`` (DataDriftDetected in
the terminal within 120 s, as one line naming the drifted features).

The stack is ``vigil run`` (what ``make run`` runs) with every setting at its default
except ports and VIGIL_HOME, which holds the default model trained once per session, as
``make run`` would train it. Traffic is ``vigil traffic``, what ``make traffic`` runs.
The time from the start of the drifted traffic to the alert's line is printed (``pytest -s``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import free_port, need_binary
from tests.support.alerting import Prometheus
from tests.support.processes import REPO, Proc, alive, base_env, http_ok, wait_until

pytestmark = pytest.mark.integration

FIRST_ALERT_WITHIN = 120.0  # seconds from `make traffic DRIFT=most` to the terminal (issue)
# Longest wait for Prometheus to scrape the monitor's verdict on normal traffic, and then to
# evaluate its rules (15 s each by default), with slack for a loaded machine.
QUIET_AFTER_VERDICT = 50.0
DRIFT_LINE = re.compile(r"^\[FIRING\] DataDriftDetected .*$", re.MULTILINE)
STARTED = re.compile(r"^\[vigil\] started (\S+) \(pid (\d+)\)$", re.MULTILINE)


class MakeRun:
    """``vigil run`` with its terminal in a file."""

    def __init__(self, tmp, home):
        need_binary("prometheus")
        need_binary("prometheus-alertmanager", "alertmanager")
        ports = {n: free_port() for n in ("port", "monitor", "prometheus", "am", "webhook")}
        self.env = base_env(
            home=home,
            port=ports["port"],
            monitor_port=ports["monitor"],
            prometheus_port=ports["prometheus"],
            alertmanager_port=ports["am"],
            webhook_port=ports["webhook"],
            alert_webhook_url=f"http://127.0.0.1:{ports['webhook']}/alerts",
        )
        self.service = f"http://127.0.0.1:{ports['port']}"
        self.monitor = f"http://127.0.0.1:{ports['monitor']}"
        self.prometheus = f"http://127.0.0.1:{ports['prometheus']}"
        self.alertmanager = f"http://127.0.0.1:{ports['am']}"
        self.terminal = tmp / "terminal.log"
        self.proc = Proc(
            "make run", [sys.executable, "-m", "vigil", "run"], self.terminal, self.env
        )

    def output(self) -> str:
        return self.terminal.read_text(errors="replace")

    def traffic(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "vigil", "traffic", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def monitor_value(self, name: str) -> float | None:
        """The (only) sample of ``name`` on the monitor's /metrics, or None."""
        text = httpx.get(f"{self.monitor}/metrics", timeout=5).text
        match = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, flags=re.MULTILINE)
        return float(match.group(1)) if match else None

    def wait(self, check, what: str, timeout: float):
        return wait_until(check, timeout, what, [self.proc], interval=0.5)

    def stop(self) -> None:
        children = [int(pid) for _name, pid in STARTED.findall(self.output())]
        if self.proc.alive():
            self.proc.signal_group(signal.SIGTERM)  # make run stops its children in order
            try:
                self.proc.popen.wait(60)
            except subprocess.TimeoutExpired:
                pass
        self.proc.stop()
        for pid in children:  # each child has a session of its own
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def make_run(tmp_path, trained_home_template):
    home = tmp_path / "vigil-home"
    shutil.copytree(trained_home_template, home)
    stack = MakeRun(tmp_path, home)
    try:
        for what, url in (
            ("the service", f"{stack.service}/readyz"),
            ("the monitor", f"{stack.monitor}/metrics"),
            ("Prometheus", f"{stack.prometheus}/-/ready"),
            ("Alertmanager", f"{stack.alertmanager}/-/ready"),
        ):
            stack.wait(lambda url=url: http_ok(url), f"{what} of make run ({url})", 120)
        yield stack
    except BaseException:
        print(stack.output()[-6000:])
        raise
    finally:
        stack.stop()


def test_make_traffic_never_alerts_and_drifted_traffic_alerts_within_two_minutes(make_run):
    stack = make_run
    assert "[vigil] started webhook-receiver" in stack.output()

    # make traffic: the monitor's verdict on a full window of it is "no drift" ...
    ok_runs = stack.monitor_value('vigil_drift_runs_total{outcome="ok"}') or 0
    stack.traffic()
    stack.wait(
        lambda: (stack.monitor_value('vigil_drift_runs_total{outcome="ok"}') or 0) > ok_runs,
        "the monitor's check of the normal traffic",
        60,
    )
    assert stack.monitor_value("vigil_drift_detected") == 0, stack.output()
    # ... and no drift alert reaches the terminal, however long one would take: every drift
    # rule's `for:` is 0 s, so once Prometheus has scraped the verdict and evaluated the rules
    # on it, a drift alert would be in its ALERTS before any notification could be sent.
    verdicts = stack.monitor_value('vigil_drift_runs_total{outcome="ok"}')
    runs = 'vigil_drift_runs_total{outcome="ok"}'
    prometheus = Prometheus(stack.prometheus)
    scraped = stack.wait(
        lambda: prometheus.values(f"sum({runs}) >= {verdicts}") and prometheus.scraped_at(runs),
        "Prometheus to scrape the monitor's verdict",
        QUIET_AFTER_VERDICT,
    )
    stack.wait(
        lambda: prometheus.evaluated_after(scraped),
        "Prometheus to evaluate its rules on the verdict",
        QUIET_AFTER_VERDICT,
    )
    assert not DRIFT_LINE.search(stack.output()), stack.output()
    alerts = httpx.get(f"{stack.prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    assert not [a for a in alerts if "Drift" in a["labels"]["alertname"]], alerts

    # make traffic DRIFT=most: DataDriftDetected in the terminal within two minutes.
    started = time.monotonic()
    stack.traffic("--drift", "most")
    line = stack.wait(
        lambda: DRIFT_LINE.search(stack.output()),
        "DataDriftDetected in the terminal",
        FIRST_ALERT_WITHIN + 30,
    ).group(0)
    took = time.monotonic() - started
    print(f"\n[e2e] make traffic DRIFT=most -> DataDriftDetected in the terminal: {took:.1f} s")
    assert took <= FIRST_ALERT_WITHIN, (took, stack.output())

    # One notification for the event: one line, naming the drifted features.
    assert "features: " in line and "FeatureDriftDetected" in line, line
    time.sleep(2)
    drift_lines = [
        x for x in stack.output().splitlines() if x.startswith("[FIRING]") and "Drift" in x
    ]
    assert drift_lines == [line], drift_lines
