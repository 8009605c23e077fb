"""An Alertmanager webhook that starts a retraining run on drift or a quality drop.

Off by default (``VIGIL_RETRAIN_TRIGGER_ENABLED``). One run at a time, and at most one run per
``VIGIL_RETRAIN_MIN_INTERVAL_SECONDS``: a flapping alert must not retrain in a loop.

Only Alertmanager may start a run: a POST to ``/retrain`` with ``Authorization: Bearer
<VIGIL_RETRAIN_TRIGGER_TOKEN>`` (compared in constant time) and a JSON body
(``Content-Type: application/json``, which a web page cannot send to another origin without a
preflight this server never answers) of at most ``MAX_BODY_BYTES``.
"""

from __future__ import annotations

import hmac
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated

import typer

from vigil.httpserve import SOCKET_TIMEOUT_SECONDS, BodyError, read_body, serve_until_interrupted
from vigil.settings import MIN_TOKEN_CHARS

TRIGGERS = frozenset({"DataDriftDetected", "ModelQualityDrop"})
RETRAIN_COMMAND = [sys.executable, "-m", "vigil", "retrain"]
PATH = "/retrain"
# Alertmanager's notification for a group of alerts; far above what it sends for Vigil's rules.
MAX_BODY_BYTES = 1_000_000


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
        alerts = payload.get("alerts")
        firing = sorted(
            {
                a["labels"].get("alertname", "")
                for a in (alerts if isinstance(alerts, list) else [])
                if isinstance(a, dict) and isinstance(a.get("labels"), dict)
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
            self.proc = subprocess.Popen(self.command)
            self.last_start = now
            self.runs += 1
            return {"started": True, "reason": f"alerts: {', '.join(firing)}"}

    def wait(self, timeout: float | None = None) -> int | None:
        return None if self.proc is None else self.proc.wait(timeout)


def make_server(trigger: RetrainTrigger, host: str, port: int, token: str) -> ThreadingHTTPServer:
    """The webhook on ``host:port``; only requests bearing ``token`` reach ``trigger``."""
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(
            f"the retraining trigger needs a token of at least {MIN_TOKEN_CHARS} chars"
        )
    expected = token.encode()

    class Handler(BaseHTTPRequestHandler):
        timeout = SOCKET_TIMEOUT_SECONDS

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            # Path, key and type first: nothing of the body is read for a request refused.
            if self.path.split("?", 1)[0] != PATH:
                self._reply(404, {"error": f"not found; POST {PATH}"})
            elif not self._authorized():
                self._reply(401, {"error": "a valid bearer token is required"}, bearer=True)
            elif _media_type(self.headers.get("Content-Type")) != "application/json":
                self._reply(415, {"error": "Content-Type must be application/json"})
            else:
                self._serve()

        def do_GET(self) -> None:  # noqa: N802
            self._reply(405, {"error": f"POST {PATH}"}, allow=True)

        do_PUT = do_DELETE = do_PATCH = do_GET  # noqa: N815

        def _serve(self) -> None:
            try:
                payload = json.loads(read_body(self, MAX_BODY_BYTES))
                if not isinstance(payload, dict):
                    raise ValueError("not an object")
            except BodyError as exc:
                self._reply(exc.status, {"error": exc.message})
                return
            except (ValueError, RecursionError):
                self._reply(400, {"error": "body is not an Alertmanager JSON object"})
                return
            self._reply(202, trigger.handle(payload))

        def _authorized(self) -> bool:
            scheme, _, credentials = (self.headers.get("Authorization") or "").partition(" ")
            given = credentials.strip().encode("utf-8", "replace")
            # compare_digest takes as long for a near miss as for a wild guess.
            return hmac.compare_digest(given, expected) and scheme.lower() == "bearer"

        def _reply(self, status: int, body: dict, bearer=False, allow=False) -> None:
            data = json.dumps(body).encode()
            if status >= 400:
                self.close_connection = True  # an unread body is not a next request
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Content-Type-Options", "nosniff")
            if bearer:
                self.send_header("WWW-Authenticate", 'Bearer realm="vigil-retrain"')
            if allow:
                self.send_header("Allow", "POST")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args) -> None:
            sys.stderr.write(f"[retrain-trigger] {fmt % args}\n")

    return ThreadingHTTPServer((host, port), Handler)


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def main(
    port: Annotated[
        int | None, typer.Option(help="Port (default VIGIL_RETRAIN_TRIGGER_PORT)")
    ] = None,
) -> None:
    """Serve the retraining webhook for Alertmanager (POST /retrain with the bearer token)."""
    from vigil.settings import get_settings

    settings = get_settings()
    token = settings.retrain_trigger_token
    if token is None or len(token.get_secret_value()) < MIN_TOKEN_CHARS:
        typer.echo(
            f"[retrain-trigger] VIGIL_RETRAIN_TRIGGER_TOKEN must be set (at least "
            f"{MIN_TOKEN_CHARS} characters): the trigger does not start without one",
            err=True,
        )
        raise typer.Exit(2)
    trigger = RetrainTrigger(RETRAIN_COMMAND, settings.retrain_min_interval_seconds)
    server = make_server(
        trigger, "127.0.0.1", port or settings.retrain_trigger_port, token.get_secret_value()
    )
    typer.echo(f"[retrain-trigger] listening on {server.server_address}")
    serve_until_interrupted(server)


if __name__ == "__main__":
    typer.run(main)
