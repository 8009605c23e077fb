"""BentoML's request timeout with the timer cancelled at the end of each request."""

from __future__ import annotations

import asyncio
import gc
import time

from bentoml._internal.server.http.traffic import TimeoutMiddleware

from service.timeouts import cancel_request_timers


async def _request(app, timeout: float) -> tuple[list[dict], float]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    started = time.monotonic()
    await TimeoutMiddleware(app, timeout=timeout)({"type": "http"}, receive, send)
    return sent, time.monotonic() - started


async def _quick(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _slow(scope, receive, send):
    await asyncio.sleep(30)


def _live_timers() -> list[asyncio.TimerHandle]:
    return [h for h in gc.get_objects() if isinstance(h, asyncio.TimerHandle) and not h.cancelled()]


def test_a_finished_request_leaves_no_timer_behind():
    cancel_request_timers()

    async def main():
        before = len(_live_timers())
        for _ in range(20):
            sent, _ = await _request(_quick, timeout=60)
            assert sent[0]["status"] == 200
        return len(_live_timers()) - before

    assert asyncio.run(main()) == 0


def test_a_slow_request_still_gets_bentomls_504():
    cancel_request_timers()
    sent, elapsed = asyncio.run(_request(_slow, timeout=0.2))
    assert sent[0]["status"] == 504
    assert b"0.2 seconds" in sent[1]["body"]
    assert elapsed < 5
