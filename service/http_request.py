"""A request whose body the service reads itself (the JSON API, the Open Inference Protocol):
the body read up to its limit, refused before a byte is read when Content-Length is already past
it, and the watch for a caller that goes away while the app works."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Required, TypedDict

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    """The body is over the limit; ``reason`` feeds vigil_input_rejected_total."""

    reason = "body_too_large"

    def __init__(self, size: int | None, limit: int):
        said = f"{size} bytes" if size is not None else "more than that"
        super().__init__(
            f"request body is {said}; the limit is {limit} bytes (VIGIL_MAX_BODY_BYTES)"
        )


class ClientGone(Exception):
    """The caller went away before sending the whole body: nobody to answer."""


class LimitedRequest:
    """One request, as ASGI middleware sees it, whose body may be at most ``limit`` bytes."""

    def __init__(self, scope: Scope, receive: Receive, limit: int):
        self.scope = scope
        self.receive = receive
        self.limit = limit

    def content_length(self) -> int | None:
        for key, value in self.scope["headers"]:
            if key == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    async def body(self) -> bytes:
        """The whole body; ``BodyTooLarge`` as soon as it passes the limit (before reading when
        Content-Length says so), ``ClientGone`` when the caller leaves before sending it all."""
        length = self.content_length()
        if length is not None and length > self.limit:
            raise BodyTooLarge(length, self.limit)
        chunks, size = [], 0
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise BodyTooLarge(None, self.limit)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def run_watched(
        self, app: ASGIApp, scope: Scope, body: bytes, send: Send, on_gone: Callable[[], None]
    ) -> None:
        """Run ``app`` on ``scope`` and the ``body`` already read; cancel it, and call
        ``on_gone()``, if the caller disconnects first."""
        gone = asyncio.Event()
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        task = asyncio.ensure_future(app(scope, replay, send))
        # With the body read, the server's receive() returns only once the client is gone.
        watch = asyncio.ensure_future(self.receive())
        try:
            while not task.done():
                await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
                if task.done() or not watch.done():
                    continue
                if watch.exception() is None and watch.result()["type"] == "http.disconnect":
                    gone.set()
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    on_gone()
                    return
                watch = asyncio.ensure_future(self.receive())
            task.result()
        finally:
            for pending in (task, watch):
                pending.cancel()


class BodyLimits(TypedDict, total=False):
    """What ``BodyReadingMiddleware`` takes, for its subclasses' keyword arguments."""

    max_body_bytes: Required[Callable[[], int]]
    on_reject: Callable[[str], None]


class BodyReadingMiddleware:
    """ASGI middleware whose routes' bodies are read here, up to ``max_body_bytes()`` (read per
    request: the limit follows the model served now); ``on_reject(reason)`` counts what is
    refused."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: Callable[[], int],
        on_reject: Callable[[str], None] = lambda reason: None,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.on_reject = on_reject

    def request(self, scope: Scope, receive: Receive) -> LimitedRequest:
        return LimitedRequest(scope, receive, self.max_body_bytes())
