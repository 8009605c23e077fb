"""A tiny Alertmanager webhook receiver that prints one readable line per notification.

It is the default ``VIGIL_ALERT_WEBHOOK_URL`` target, so ``make run`` shows alerts in its
terminal without any chat or mail account. Standard library only.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated

import typer

from vigil.httpserve import SOCKET_TIMEOUT_SECONDS, BodyError, read_body, serve_until_interrupted

MAX_BODY_BYTES = 1_000_000


# Which alert of a grouped notification speaks for it: the dataset-level drift verdict before
# the per-feature alerts grouped with it.
_LEAD_FIRST = ("DataDriftDetected",)
_DETAIL_LABELS = ("model_version", "feature", "metric", "endpoint", "instance")


def format_alert(alert: dict) -> str:
    """One line: status, name, severity, model version, feature, summary, report link."""
    labels = alert.get("labels") or {}
    annotations = alert.get("annotations") or {}
    parts = [
        f"[{str(alert.get('status', '?')).upper()}]",
        labels.get("alertname", "<no alertname>"),
        f"severity={labels.get('severity', '-')}",
    ]
    for key in _DETAIL_LABELS:
        if labels.get(key):
            parts.append(f"{key}={labels[key]}")
    line = " ".join(parts)
    if annotations.get("summary"):
        line += f" | {annotations['summary']}"
    if annotations.get("report"):
        line += f" | report: {annotations['report']}"
    return line


def format_notification(payload: dict) -> str:
    """One line for an Alertmanager webhook payload (version 4), however many alerts it groups.

    A drift event (DataDriftDetected and its FeatureDriftDetected alerts, grouped by model
    version) reads as the verdict's line naming the drifted features; alerts of the
    notification that have resolved meanwhile are named at the end.
    """
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise ValueError("payload has no 'alerts' list")
    alerts = [a for a in alerts if isinstance(a, dict)]
    if not alerts:
        raise ValueError("payload has no alerts")
    firing = [a for a in alerts if a.get("status") == "firing"]
    resolved = [a for a in alerts if a.get("status") != "firing"]
    shown = firing or resolved
    lead = min(shown, key=lambda a: _rank(_labels(a).get("alertname")))
    line = format_alert(lead)
    extra = _others(shown, lead)
    if extra:
        line += f" | with {extra}"
    features = _values(shown, "feature")
    if len(features) > 1 or (features and "feature" not in _labels(lead)):
        line += f" | features: {', '.join(features)}"
    instances = _values(shown, "instance")
    if len(instances) > 1:
        line += f" | instances: {', '.join(instances)}"
    if firing and resolved:
        gone = _values(resolved, "feature") or _values(resolved, "alertname")
        line += f" | resolved: {', '.join(gone)}"
    return line


def _labels(alert: dict) -> dict:
    labels = alert.get("labels")
    return labels if isinstance(labels, dict) else {}


def _rank(name: object) -> tuple[int, str]:
    return (0 if name in _LEAD_FIRST else 1, str(name))


def _values(alerts: list[dict], key: str) -> list[str]:
    return sorted({str(_labels(a)[key]) for a in alerts if _labels(a).get(key)})


def _others(alerts: list[dict], lead: dict) -> str:
    """``3 FeatureDriftDetected`` for the alerts grouped with ``lead`` (other than itself)."""
    counts: dict[str, int] = {}
    for alert in alerts:
        if alert is not lead:
            name = str(_labels(alert).get("alertname", "<no alertname>"))
            counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))


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
            line = format_notification(json.loads(body or b"null"))
        except (ValueError, AttributeError, RecursionError) as exc:
            self._reply(400, f"not an Alertmanager webhook payload: {exc}")
            return
        self.server.emit(line)
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

    def emit(self, line: str) -> None:
        with self._lock:  # notifications posted at once never interleave
            self._emit(line)


def make_server(
    host: str = "127.0.0.1", port: int = 9095, emit: Callable[[str], None] | None = None
) -> ThreadingHTTPServer:
    """A bound server (port 0 picks a free one); call ``serve_forever`` to run it."""
    return _ReceiverServer((host, port), emit or _print_line)


def _print_line(line: str) -> None:
    print(line, flush=True)


app = typer.Typer(
    add_completion=False,
    help="Print Alertmanager webhook notifications, one line per notification.",
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
    """Listen for Alertmanager webhook POSTs and print each notification as a line."""
    if port is None:
        from vigil.settings import get_settings

        port = get_settings().webhook_port
    server = make_server(host, port)
    print(f"webhook receiver listening on http://{host}:{port}/alerts", file=sys.stderr, flush=True)
    serve_until_interrupted(server)


if __name__ == "__main__":
    app()
