"""Run a small standard-library HTTP server in the foreground until Ctrl-C."""

from __future__ import annotations

from socketserver import BaseServer


def serve_until_interrupted(server: BaseServer) -> None:
    """Serve until Ctrl-C (a clean stop, not a traceback), then free the socket."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
