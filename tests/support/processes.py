"""Subprocesses for tests that run the real things: each in a session of its own with its log
in a file, readiness polling that fails with every process's log, and /proc helpers that find
and check what a process started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
LOG_TAIL_CHARS = 4000


def base_env(**vigil: object) -> dict[str, str]:
    """The test process's environment without any VIGIL_* or multiprocess setting, plus
    ``vigil`` as ``VIGIL_<NAME>`` variables."""
    env = {k: v for k, v in os.environ.items() if not hidden_variable(k)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(vigil_env(**vigil))
    return env


def hidden_variable(name: str) -> bool:
    """A variable of the test process that a command it runs must not see."""
    return name.startswith("VIGIL_") or name in {"PROMETHEUS_MULTIPROC_DIR", "BENTOML_HOME"}


def vigil_env(**vigil: object) -> dict[str, str]:
    """``vigil`` as ``VIGIL_<NAME>`` variables, no ``.env`` file, no telemetry, no MLflow
    tracking (tests of MLflow pass ``mlflow_tracking_uri=...``)."""
    env = {"VIGIL_ENV_FILE": "", "BENTOML_DO_NOT_TRACK": "true", "VIGIL_MLFLOW_TRACKING_URI": "off"}
    env.update({f"VIGIL_{k.upper()}": str(v) for k, v in vigil.items()})
    return env


def python_output(code: str, timeout: float = 180) -> str:
    """stdout of ``code`` run in a new interpreter from the repository (a clean
    ``sys.modules``, ``base_env``), stripped; fails the test on a non-zero exit."""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=base_env(), capture_output=True,
        text=True, timeout=timeout,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


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


def stop_all(procs: Iterable[Proc], timeout: float = 15.0) -> None:
    """``Proc.stop`` for every one of ``procs``, SIGTERM to all first: they shut down side by
    side, not one after another."""
    procs = list(procs)
    for proc in procs:
        if proc.alive():
            proc.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.stop(max(0.1, deadline - time.monotonic()))


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


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields after the command name


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def started(pid: int) -> str:
    """When ``pid`` started (clock ticks since boot): tells a process from a later one that
    reuses its pid."""
    fields = _stat(pid)
    return fields[19] if fields else ""


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far (0 once it is gone)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
