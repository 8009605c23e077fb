"""Small standard-library HTTP servers: run one in the foreground, and read a request body
within a bound."""

from __future__ import annotations

import re
from http.server import BaseHTTPRequestHandler
from socketserver import BaseServer

_DIGITS = re.compile(r"[0-9]{1,19}")
# How long a handler waits on a silent client before giving up its thread.
SOCKET_TIMEOUT_SECONDS = 30


class BodyError(Exception):
    """A request body that will not be read: ``status`` says why (411, 400 or 413)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def read_body(handler: BaseHTTPRequestHandler, limit: int) -> bytes:
    """The request body, read only when its ``Content-Length`` is one plain number within
    ``limit``: never until EOF, never more than announced. A chunked or unannounced body is a
    411, a malformed length or a short body a 400, a longer one a 413 (not read)."""
    lengths = handler.headers.get_all("Content-Length") or []
    if handler.headers.get("Transfer-Encoding"):
        raise BodyError(411, "send the body with a Content-Length, not Transfer-Encoding")
    if not lengths:
        raise BodyError(411, "Content-Length is required")
    if len(set(lengths)) > 1 or not _DIGITS.fullmatch(lengths[0].strip()):
        raise BodyError(400, "Content-Length must be one non-negative integer")
    length = int(lengths[0])
    if length > limit:
        raise BodyError(413, f"body of {length} bytes is above the limit of {limit}")
    body = handler.rfile.read(length)
    if len(body) != length:
        raise BodyError(400, f"body ended after {len(body)} of {length} bytes")
    return body


def serve_until_interrupted(server: BaseServer) -> None:
    """Serve until Ctrl-C (a clean stop, not a traceback), then free the socket."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
