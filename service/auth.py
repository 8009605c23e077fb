"""Bearer-key check for the write endpoints (``VIGIL_API_KEY``), as ASGI middleware so that it
runs before the body is read or parsed."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from service.errors import ApiError


class BearerAuth:
    def __init__(
        self,
        app,
        *,
        api_key: Callable[[], str | None],
        paths: frozenset[str],
        on_reject: Callable[[str], None] = lambda reason: None,
    ):
        self.app = app
        self.api_key = api_key  # read per request: the key lives in the worker's settings
        self.paths = paths
        self.on_reject = on_reject

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            key = self.api_key()
            if key and not authorized(scope, key):
                self.on_reject("unauthorized")
                error = ApiError(
                    401,
                    "missing or wrong API key: send 'Authorization: Bearer <VIGIL_API_KEY>'",
                    reason="unauthorized",
                )
                response = error.response()
                response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def authorized(scope, key: str) -> bool:
    expected = f"Bearer {key}".encode()
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return hmac.compare_digest(value.strip(), expected)
    return False
