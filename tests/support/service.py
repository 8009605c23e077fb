"""Run the real service (``python -m service serve``) in a test, and stop it completely.

    with start_service(home, free_port(), {"VIGIL_API_KEY": "k"}) as svc:
        httpx.post(f"{svc.url}/predict", ...)

The server gets its own VIGIL_HOME (so its own BentoML home and metrics directory), its own
process group, and a log file that is printed when it does not become ready. BentoML's workers
run in sessions of their own (circus starts them with setsid), so stopping or killing "the
group" also has to reach them: ``terminate`` and ``kill`` do.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.processes import alive, cmdline, descendants, started

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 90.0  # startup takes ~4 s; a loaded 2-core machine can take much longer
STARTED_LINE = "Service vigil initialized"  # BentoML logs it once per worker


class ServiceFailed(RuntimeError):
    pass


@dataclass
class ServiceHandle:
    url: str
    port: int
    home: Path
    proc: subprocess.Popen
    log_path: Path
    workers: int = 2
    _known: dict[int, str] = field(default_factory=dict)  # pid -> start time, seen so far

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def processes(self) -> list[int]:
        """Pids of the wrapper, the BentoML arbiter and its workers (live ones)."""
        found = [self.proc.pid, *descendants(self.proc.pid)] if alive(self.proc.pid) else []
        self._known.update({pid: started(pid) for pid in found})
        return found

    def _still_ours(self) -> list[int]:
        """Known pids still alive and not reused by another process since."""
        return [pid for pid, at in self._known.items() if alive(pid) and started(pid) == at]

    def worker_pids(self) -> list[int]:
        return [p for p in self.processes() if "_bentoml_impl.worker.service" in cmdline(p)]

    def terminate(self, timeout: float = 30.0) -> int | None:
        """SIGTERM as a process manager sends it (to the group); SIGKILL whatever is left after
        ``timeout``. Returns the wrapper's exit code (None if it had to be killed)."""
        self.processes()
        _signal_group(self.proc.pid, signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        self._wait_gone(timeout=10.0 if code is not None else 0.0)
        self.kill()
        return code

    def kill(self) -> None:
        """kill -9 the wrapper's group and every process it started, workers included."""
        self.processes()
        _signal_group(self.proc.pid, signal.SIGKILL)
        for pid in self._still_ours():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._wait_gone(timeout=10.0)

    def _wait_gone(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._still_ours():
                return
            time.sleep(0.05)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def service_env(home: Path, port: int, env: dict[str, str] | None = None) -> dict[str, str]:
    """The outer environment without any VIGIL_ setting, plus this server's own."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIL_", "BENTOML_"))}
    out.update(
        {
            "VIGIL_ENV_FILE": "",  # no .env from the working directory
            "VIGIL_HOME": str(home),
            "VIGIL_HOST": "127.0.0.1",
            "VIGIL_PORT": str(port),
            "BENTOML_DO_NOT_TRACK": "true",
            "PYTHONUNBUFFERED": "1",
        }
    )
    out.update(env or {})
    return out


def launch(home: Path, port: int, env: dict[str, str] | None = None) -> ServiceHandle:
    """Start the service without waiting for it; see ``wait_ready``."""
    log_path = Path(home) / f"service-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = service_env(Path(home), port, env)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", "serve"],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: signals reach it alone
        )
    workers = int(full_env.get("VIGIL_WORKERS", "2"))
    return ServiceHandle(f"http://127.0.0.1:{port}", port, Path(home), proc, log_path, workers)


def wait_ready(handle: ServiceHandle, timeout: float = READY_TIMEOUT) -> None:
    """Until /readyz answers 200 and every worker has finished starting (one ready worker is
    enough for /readyz; a test that needs both must not race the other's start)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        code = handle.proc.poll()
        if code is not None:
            raise ServiceFailed(
                f"service exited with {code} before it was ready; its log:\n{handle.log_text()}"
            )
        try:
            response = httpx.get(f"{handle.url}/readyz", timeout=2.0)
            started = handle.log_text().count(STARTED_LINE)
            if response.status_code == 200 and started >= handle.workers:
                return
            last = f"HTTP {response.status_code}: {response.text[:200]}; {started} started"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise ServiceFailed(
        f"service not ready after {timeout:.0f} s (last: {last}); its log:\n{handle.log_text()}"
    )


def wait_alive(handle: ServiceHandle, timeout: float = READY_TIMEOUT) -> None:
    """Until /livez answers 200 (alive, ready or not); fails with the service's log when it
    exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        assert handle.proc.poll() is None, handle.log_text()
        try:
            if httpx.get(f"{handle.url}/livez", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, handle.log_text()
        time.sleep(0.2)


@contextlib.contextmanager
def start_service(
    home: Path, port: int, env: dict[str, str] | None = None, *, timeout: float = READY_TIMEOUT
) -> Iterator[ServiceHandle]:
    """Start ``python -m service serve`` for ``home`` on ``port`` (extra ``env`` on top), wait
    until /readyz answers 200, yield a handle; on exit stop the whole process tree."""
    handle = launch(home, port, env)
    try:
        try:
            wait_ready(handle, timeout)
        except ServiceFailed as exc:
            print(exc, file=sys.stderr)
            raise
        yield handle
    finally:
        handle.terminate()
