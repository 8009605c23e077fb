"""A tiny Alertmanager webhook receiver that prints one readable line per alert.

It is the default ``VIGIL_ALERT_WEBHOOK_URL`` target, so ``make run`` shows alerts in its
terminal without any chat or mail account. Standard library only.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated

import typer

from vigil.httpserve import SOCKET_TIMEOUT_SECONDS, BodyError, read_body, serve_until_interrupted

MAX_BODY_BYTES = 1_000_000


def format_alert(alert: dict) -> str:
    """One line: status, name, severity, model version, feature, summary, report link."""
    labels = alert.get("labels") or {}
    annotations = alert.get("annotations") or {}
    parts = [
        f"[{str(alert.get('status', '?')).upper()}]",
        labels.get("alertname", "<no alertname>"),
        f"severity={labels.get('severity', '-')}",
    ]
    for key in ("model_version", "feature", "metric", "endpoint", "instance"):
        if labels.get(key):
            parts.append(f"{key}={labels[key]}")
    line = " ".join(parts)
    if annotations.get("summary"):
        line += f" | {annotations['summary']}"
    if annotations.get("report"):
        line += f" | report: {annotations['report']}"
    return line


def format_notification(payload: dict) -> list[str]:
    """Lines for an Alertmanager webhook payload (version 4): one per alert."""
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise ValueError("payload has no 'alerts' list")
    return [format_alert(alert) for alert in alerts if isinstance(alert, dict)]


class _Handler(BaseHTTPRequestHandler):
    server: _ReceiverServer

    timeout = SOCKET_TIMEOUT_SECONDS

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        try:
            body = read_body(self, MAX_BODY_BYTES)
        except BodyError as exc:
            self.close_connection = True  # what was not read is not a next request
            self._reply(exc.status, exc.message)
            return
        try:
            lines = format_notification(json.loads(body or b"null"))
        except (ValueError, AttributeError, RecursionError) as exc:
            self._reply(400, f"not an Alertmanager webhook payload: {exc}")
            return
        self.server.emit_lines(lines)
        self._reply(200, "ok")

    def do_GET(self) -> None:  # noqa: N802 - a health check for compose and tests
        self._reply(200, "ok")

    def _reply(self, status: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # keep the terminal for alerts, not access logs


class _ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], emit: Callable[[str], None]) -> None:
        super().__init__(address, _Handler)
        self._emit = emit
        self._lock = threading.Lock()

    def emit_lines(self, lines: Iterable[str]) -> None:
        with self._lock:  # lines of one notification stay together
            for line in lines:
                self._emit(line)


def make_server(
    host: str = "127.0.0.1", port: int = 9095, emit: Callable[[str], None] | None = None
) -> ThreadingHTTPServer:
    """A bound server (port 0 picks a free one); call ``serve_forever`` to run it."""
    return _ReceiverServer((host, port), emit or _print_line)


def _print_line(line: str) -> None:
    print(line, flush=True)


app = typer.Typer(
    add_completion=False, help="Print Alertmanager webhook notifications, one line per alert."
)


@app.command()
def main(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(
            help="Port to listen on (default: VIGIL_WEBHOOK_PORT, 9095).", show_default=False
        ),
    ] = None,
) -> None:
    """Listen for Alertmanager webhook POSTs and print each alert as a line."""
    if port is None:
        from vigil.settings import get_settings

        port = get_settings().webhook_port
    server = make_server(host, port)
    print(f"webhook receiver listening on http://{host}:{port}/alerts", file=sys.stderr, flush=True)
    serve_until_interrupted(server)


if __name__ == "__main__":
    app()
