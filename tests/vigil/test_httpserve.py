"""vigil.httpserve.read_body over raw sockets: a Content-Length that is missing, negative, not
a number or too large never makes a server read until EOF."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.rawhttp import BAD_LENGTHS, post_head, raw_status
from vigil.httpserve import BodyError, read_body

LIMIT = 1000


class _Echo(BaseHTTPRequestHandler):
    """Answers 200 with the body's length, or the BodyError's status."""

    timeout = 10

    def do_POST(self) -> None:  # noqa: N802
        try:
            status, text = 200, str(len(read_body(self, LIMIT)))
        except BodyError as exc:
            status, text = exc.status, exc.message
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def base():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("length", "status"), BAD_LENGTHS)
def test_bad_lengths_are_refused_without_reading(base, length, status):
    assert raw_status(base, post_head("/", content_length=length) + b"{}") == status


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (("Content-Length: 2", "Content-Length: 3"), 400),  # which one?
        (("Transfer-Encoding: chunked",), 411),
    ],
)
def test_ambiguous_or_chunked_bodies_are_refused(base, headers, status):
    assert raw_status(base, post_head("/", *headers) + b"2\r\n{}\r\n0\r\n\r\n") == status


def test_exact_and_short_bodies(base):
    assert raw_status(base, post_head("/", content_length="2") + b"{}") == 200
    assert raw_status(base, post_head("/", content_length=str(LIMIT)) + b"x" * LIMIT) == 200
    short = post_head("/", content_length="10") + b"{}"
    assert raw_status(base, short, half_close=True) == 400
