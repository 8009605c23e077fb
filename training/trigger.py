"""An Alertmanager webhook that starts a retraining run on drift or a quality drop.

Off by default (``VIGIL_RETRAIN_TRIGGER_ENABLED``). One run at a time, and at most one run per
``VIGIL_RETRAIN_MIN_INTERVAL_SECONDS``: a flapping alert must not retrain in a loop.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated

import typer

from vigil.httpserve import serve_until_interrupted

ROOT = Path(__file__).resolve().parents[1]
TRIGGERS = frozenset({"DataDriftDetected", "ModelQualityDrop"})
RETRAIN_COMMAND = [sys.executable, "-m", "training.retrain"]


class RetrainTrigger:
    """Decides whether an alert starts a run, and runs ``command`` in the background."""

    def __init__(self, command: list[str], min_interval: float, clock=time.monotonic):
        self.command = command
        self.min_interval = min_interval
        self.clock = clock
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.last_start: float | None = None
        self.runs = 0

    def handle(self, payload: dict) -> dict:
        firing = sorted(
            {
                a.get("labels", {}).get("alertname", "")
                for a in payload.get("alerts", [])
                if a.get("status") == "firing"
            }
            & TRIGGERS
        )
        if not firing:
            return {"started": False, "reason": "no firing drift or quality alert"}
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                return {"started": False, "reason": "a retraining run is in progress"}
            now = self.clock()
            if self.last_start is not None and now - self.last_start < self.min_interval:
                wait = self.min_interval - (now - self.last_start)
                return {"started": False, "reason": f"rate limited: next run in {wait:.0f} s"}
            self.proc = subprocess.Popen(self.command, cwd=ROOT)
            self.last_start = now
            self.runs += 1
            return {"started": True, "reason": f"alerts: {', '.join(firing)}"}

    def wait(self, timeout: float | None = None) -> int | None:
        return None if self.proc is None else self.proc.wait(timeout)


def make_server(trigger: RetrainTrigger, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            try:
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
            except (ValueError, json.JSONDecodeError):
                self._reply(400, {"error": "body is not JSON"})
                return
            self._reply(202, trigger.handle(payload))

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args) -> None:
            sys.stderr.write(f"[retrain-trigger] {fmt % args}\n")

    return ThreadingHTTPServer((host, port), Handler)


def main(
    port: Annotated[
        int | None, typer.Option(help="Port (default VIGIL_RETRAIN_TRIGGER_PORT)")
    ] = None,
) -> None:
    """Serve the retraining webhook for Alertmanager (POST any path)."""
    from vigil.settings import get_settings

    settings = get_settings()
    trigger = RetrainTrigger(RETRAIN_COMMAND, settings.retrain_min_interval_seconds)
    server = make_server(trigger, "127.0.0.1", port or settings.retrain_trigger_port)
    typer.echo(f"[retrain-trigger] listening on {server.server_address}")
    serve_until_interrupted(server)


if __name__ == "__main__":
    typer.run(main)
