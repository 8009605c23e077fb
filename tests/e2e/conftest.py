"""Helpers for tests that run the real processes: subprocesses in their own process groups with
their logs in files, readiness polling with timeouts, an in-test Alertmanager webhook, and a
Prometheus client. ``tests/stack`` uses them too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
LOG_TAIL_CHARS = 4000


def base_env(**vigil: object) -> dict[str, str]:
    """The test process's environment without any VIGIL_* or multiprocess setting, plus
    ``vigil`` as ``VIGIL_<NAME>`` variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("VIGIL_") and k not in {"PROMETHEUS_MULTIPROC_DIR", "BENTOML_HOME"}
    }
    env["BENTOML_DO_NOT_TRACK"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    env.update({f"VIGIL_{k.upper()}": str(v) for k, v in vigil.items()})
    return env


class Proc:
    """A subprocess in a session of its own (so a kill of its group reaches its children),
    with stdout and stderr in ``log``."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None):
        self.name = name
        self.argv = argv
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                argv,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text[-chars:]

    def describe(self) -> str:
        state = "running" if self.alive() else f"exited {self.popen.returncode}"
        return f"----- {self.name} (pid {self.pid}, {state}) log {self.log} -----\n{self.tail()}"

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM to the whole group, then SIGKILL after ``timeout``; the exit code."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.popen.wait(10)
        # Children that outlived their parent (same group) go too.
        self.signal_group(signal.SIGKILL)
        return self.popen.returncode


def wait_until(
    check: Callable[[], object],
    timeout: float,
    what: str,
    procs: Iterable[Proc] = (),
    interval: float = 0.2,
):
    """Poll ``check`` until it returns something truthy (returned); fail with the processes'
    logs on timeout or when one of ``procs`` exits."""
    procs = list(procs)
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        dead = [p for p in procs if not p.alive()]
        if dead or time.monotonic() > deadline:
            why = f"{dead[0].name} exited" if dead else f"timed out after {timeout:g}s"
            logs = "\n".join(p.describe() for p in procs)
            pytest.fail(f"waiting for {what}: {why}\n{logs}", pytrace=False)
        time.sleep(interval)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@dataclass
class Received:
    at: float  # time.monotonic() when the notification arrived
    status: str
    labels: dict
    annotations: dict


class Webhook(ThreadingHTTPServer):
    """The in-test Alertmanager receiver: records every alert of every notification."""

    daemon_threads = True

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                at = time.monotonic()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hook.lock:
                    for alert in body.get("alerts", []):
                        hook.received.append(
                            Received(
                                at,
                                alert["status"],
                                alert.get("labels", {}),
                                alert.get("annotations", {}),
                            )
                        )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/alerts"

    def alerts(self, name: str | None = None, status: str = "firing", **labels) -> list[Received]:
        with self.lock:
            return [
                r
                for r in self.received
                if r.status == status
                and (name is None or r.labels.get("alertname") == name)
                and all(r.labels.get(k) == v for k, v in labels.items())
            ]

    def first(self, name: str, since: float = 0.0, **labels) -> Received | None:
        hits = [r for r in self.alerts(name, **labels) if r.at >= since]
        return min(hits, key=lambda r: r.at) if hits else None

    def names(self) -> set[str]:
        return {r.labels.get("alertname") for r in self.alerts()}

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class Prometheus:
    def __init__(self, base: str):
        self.base = base

    def query(self, expr: str) -> list[dict] | None:
        """The instant query's result (a list, maybe empty); None when Prometheus did not
        answer or rejected the query (its error is kept in ``last_error``)."""
        try:
            resp = httpx.get(f"{self.base}/api/v1/query", params={"query": expr}, timeout=5)
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            self.last_error = repr(exc)
            return None
        if body.get("status") != "success":
            self.last_error = f"{body.get('errorType')}: {body.get('error')}"
            return None
        result = body["data"]["result"]
        return result if isinstance(result, list) else [result]

    def values(self, expr: str) -> dict[tuple, float]:
        """``{sorted label items: value}`` of an instant vector query."""
        return {
            tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in self.query(expr) or []
        }


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
