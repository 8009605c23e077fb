"""monitoring.server: every answer carries a Content-Security-Policy and nosniff; reports are
served sandboxed, so whatever a report holds runs in an opaque origin without network."""

from __future__ import annotations

import socket

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitoring.report_html import PAGE_POLICY, REPORT_POLICY
from monitoring.server import RETRY_AFTER_SECONDS, MonitorServer
from tests.conftest import free_port

REPORT = "drift-20260101T000000.000000Z-vigil-model_x.html"


@pytest.fixture
def monitor(tmp_path):
    (tmp_path / REPORT).write_text("<!DOCTYPE html><html><body>report</body></html>")
    server = MonitorServer(("127.0.0.1", free_port()), CollectorRegistry(), tmp_path)
    server.start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


@pytest.mark.parametrize("path", ["/reports/latest", f"/reports/{REPORT}"])
def test_reports_are_served_sandboxed(monitor, path):
    answer = httpx.get(monitor + path, timeout=10)
    assert answer.status_code == 200 and answer.text.endswith("report</body></html>")
    policy = answer.headers["content-security-policy"]
    assert policy == REPORT_POLICY
    directives = [d.strip() for d in policy.split(";")]
    assert directives[0] == "sandbox allow-scripts"  # no allow-same-origin, forms, popups
    assert "default-src 'none'" in directives and "frame-ancestors 'none'" in directives
    assert answer.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/reports/", "/nope", "/reports/x.html"])
def test_every_other_answer_runs_no_script(monitor, path):
    answer = httpx.get(monitor + path, timeout=10)
    assert answer.headers["content-security-policy"] == PAGE_POLICY
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_http_servers_own_errors_carry_the_headers(monitor):
    answer = httpx.post(monitor + "/reports/latest", timeout=10)  # no do_POST: http.server's 501
    assert answer.status_code == 501
    assert answer.headers["content-security-policy"] == PAGE_POLICY
    assert answer.headers["x-content-type-options"] == "nosniff"
    host, port = monitor.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:  # a header too long
        sock.sendall(b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n")
        head = sock.recv(65536).decode("latin-1")
    assert head.startswith("HTTP/1.0 431") and "X-Content-Type-Options: nosniff" in head


@pytest.mark.parametrize(("pending", "status"), [(True, 503), (False, 404)])
def test_latest_before_the_first_report_says_whether_one_is_coming(tmp_path, pending, status):
    server = MonitorServer(
        ("127.0.0.1", free_port()), CollectorRegistry(), tmp_path, report_pending=lambda: pending
    )
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        answer = httpx.get(base + "/reports/latest", timeout=10)
        assert answer.status_code == status
        if pending:
            assert answer.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
            assert answer.text == "the first drift report is being written; retry shortly\n"
        else:
            assert "retry-after" not in answer.headers
            assert answer.text == "no drift report yet\n"
        assert answer.headers["content-security-policy"] == PAGE_POLICY
        # Once a report is written it is served, whatever else is still rendering.
        (tmp_path / REPORT).write_text("<!DOCTYPE html><html><body>report</body></html>")
        assert httpx.get(base + "/reports/latest", timeout=10).status_code == 200
    finally:
        server.stop()
