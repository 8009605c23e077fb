"""The monitor's HTTP server: ``/metrics``, ``/healthz`` and the saved reports under ``/reports/``.

``/reports/latest`` serves the newest report itself (alerts link to it; before the first one is
written it answers 503 with Retry-After while a report is being rendered, 404 when none is on
its way), ``/reports/`` lists them, ``/reports/<name>`` serves one. Only names of saved
reports are served, so no path from a request ever reaches the file system. Reports go out
under ``REPORT_POLICY`` (sandboxed scripts), every other answer under ``PAGE_POLICY`` (no
script), all with ``nosniff``.
"""

from __future__ import annotations

import html
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitoring.report_html import PAGE_POLICY, REPORT_POLICY
from monitoring.report_store import is_report_name, latest_report, list_reports

log = logging.getLogger(__name__)

# What /reports/latest asks a reader to wait while the first report is rendered.
RETRY_AFTER_SECONDS = 5


class MonitorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        collector: CollectorRegistry,
        reports_dir: Path,
        health: Callable[[], dict] = dict,
        report_pending: Callable[[], bool] = lambda: False,
    ):
        self.collector = collector  # what /metrics serves
        self.reports_dir = Path(reports_dir)
        self.health = health
        self.report_pending = report_pending  # a report is being rendered or waits for it
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> threading.Thread:
        thread = threading.Thread(
            target=self.serve_forever, args=(0.2,), name="monitor-http", daemon=True
        )
        thread.start()
        return thread

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: MonitorServer
    policy = PAGE_POLICY
    timeout = 30  # a client that stops sending mid-request frees its thread

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.server.collector))
        elif path == "/healthz":
            body = {"status": "ok", **self.server.health()}
            self._send(200, "application/json", json.dumps(body).encode())
        elif path in ("/reports", "/reports/"):
            self._send(200, "text/html; charset=utf-8", self._index().encode())
        elif path == "/reports/latest":
            latest = latest_report(self.server.reports_dir)
            if latest is None and self.server.report_pending():
                # An alert fires on the verdict and its report follows: the link's first
                # reader is told to come back, not that there is nothing.
                body = b"the first drift report is being written; retry shortly\n"
                self._send(503, "text/plain", body, {"Retry-After": str(RETRY_AFTER_SECONDS)})
            else:
                self._file(latest)
        elif path.startswith("/reports/") and is_report_name(path[len("/reports/") :]):
            self._file(self.server.reports_dir / path[len("/reports/") :])
        else:
            self._send(404, "text/plain", b"not found\n")

    def _index(self) -> str:
        items = "".join(
            f"<li><a href='/reports/{html.escape(p.name)}'>{html.escape(p.name)}</a></li>"
            for p in reversed(list_reports(self.server.reports_dir))
        )
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Vigil drift reports</title>"
            "</head><body><h1>Drift reports</h1><p><a href='/reports/latest'>latest</a></p>"
            f"<ul>{items or '<li>none yet</li>'}</ul></body></html>"
        )

    def _file(self, path: Path | None) -> None:
        try:
            fh = open(path, "rb") if path is not None else None  # noqa: SIM115
        except FileNotFoundError:  # pruned between listing and opening
            fh = None
        if fh is None:
            self._send(404, "text/plain", b"no drift report yet\n")
            return
        with fh:
            size = os.fstat(fh.fileno()).st_size
            self.send_response(200)
            self.policy = REPORT_POLICY
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(size))
            self.send_header("Content-Location", f"/reports/{path.name}")
            self.end_headers()
            shutil.copyfileobj(fh, self.wfile)

    def _send(
        self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_response(self, code: int, message: str | None = None) -> None:
        self.policy = PAGE_POLICY  # http.server's own errors (400, 501...) get it too
        super().send_response(code, message)

    def end_headers(self) -> None:
        # A report shows logged values: whatever slipped through escaping runs sandboxed.
        self.send_header("Content-Security-Policy", self.policy)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        log.debug("%s " + format, self.address_string(), *args)
