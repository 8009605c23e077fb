"""Requests sent byte for byte over a socket: headers no HTTP client would send."""

from __future__ import annotations

import socket

# (Content-Length as sent, the status it gets); each sent with a 2-byte body and no EOF.
BAD_LENGTHS = [
    (None, 411),
    ("-1", 400),
    ("abc", 400),
    ("1e3", 400),
    ("+5", 400),
    ("0x10", 400),
    ("99999999999999999999999", 400),
    ("10000000", 413),
]


def raw_status(base_url: str, request: bytes, *, half_close: bool = False) -> int:
    """Send ``request`` as is and read the answer's status code. The socket stays open for
    writing unless ``half_close`` (then the server sees EOF), so a server that reads until EOF
    makes this time out instead of answering."""
    host, port = base_url.removeprefix("http://").split("/", 1)[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return int(sock.makefile("rb").readline().split()[1])


def post_head(path: str, *headers: str, content_length: str | None = None) -> bytes:
    """A POST request's head, ``Content-Length`` exactly as given (or none)."""
    lines = [f"POST {path} HTTP/1.1", "Host: test", *headers]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
