"""Overload sheds, it does not queue: a bound on the requests one worker has in flight.

ASGI middleware for the API paths, after the key check and before the body is read. Past
``max_in_flight()`` requests in this worker the answer is 503 with Retry-After (the contract's
error object) at once, and ``on_shed("in_flight")`` counts it. The batcher's own bound on
queued rows (``service.batcher.BatcherFull``) covers a few large requests.
"""

from __future__ import annotations

from collections.abc import Callable, Container

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import overloaded


class Admission:
    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: Container[str],
        max_in_flight: Callable[[], int],
        on_shed: Callable[[str], None] = lambda reason: None,
    ):
        self.app = app
        self.paths = paths
        self.max_in_flight = max_in_flight  # read per request: it lives in the worker's settings
        self.on_shed = on_shed
        self.in_flight = 0  # one event loop per worker: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight():
            self.on_shed("in_flight")
            error = overloaded("server busy: too many requests in flight; retry shortly")
            await error.response()(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
