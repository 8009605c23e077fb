"""BentoML's request timeout (``traffic.timeout``) without a timer left behind per request.

BentoML 1.4's ``TimeoutMiddleware`` schedules ``call_later(timeout, ...)`` for every request
and never cancels it: each finished request leaves its timer, a future and their context alive
for the whole timeout (60 s), about 700 bytes and five objects for the garbage collector. At
125 requests/s a worker held 45,000 of those objects, and every full collection walked them;
at 1,500 requests/s they would hold 60 MB. ``cancel_request_timers`` makes the middleware
cancel its timer when the request ends; the timeout itself and its 504 answer are BentoML's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import JSONResponse


async def _call(self, scope, receive, send) -> None:
    # bentoml._internal.server.http.traffic.TimeoutMiddleware.__call__ (1.4.40), plus the
    # timer's cancellation.
    if scope["type"] not in ("http", "websocket"):
        return await self.app(scope, receive, send)
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

    async def _send(message: Any) -> None:
        if not waiter.done():
            waiter.set_result(None)
        await send(message)

    fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
    try:
        await waiter
    except TimeoutError:
        if fut.cancel():
            resp = JSONResponse(
                {"error": f"Not able to process the request in {self.timeout} seconds"},
                status_code=504,
            )
            await resp(scope, receive, send)
    else:
        await fut
    finally:
        timer.cancel()


def cancel_request_timers() -> None:
    """Process-wide, in each worker (before its first request); idempotent."""
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    TimeoutMiddleware.__call__ = _call
