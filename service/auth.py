"""Bearer-key check for the write endpoints (``VIGIL_API_KEY``), as ASGI middleware so that it
runs before the body is read or parsed."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Container

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ApiError


class BearerAuth:
    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: Callable[[], str | None],
        paths: Container[str],
        on_reject: Callable[[str], None] = lambda reason: None,
    ):
        self.app = app
        self.api_key = api_key  # read per request: the key lives in the worker's settings
        self.paths = paths
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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


def authorized(scope: Scope, key: str) -> bool:
    expected = f"Bearer {key}".encode()
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return hmac.compare_digest(value.strip(), expected)
    return False


def open_endpoints_warning(host: str, keyed: bool) -> str | None:
    """The warning to print at start when /predict and /feedback take anyone's requests from
    beyond this machine (no key, a listen address other than loopback); None otherwise.
    /feedback labels feed retraining, so an open one lets anyone steer the next model."""
    if keyed or _loopback(host):
        return None
    return (
        f"warning: /predict and /feedback are open to anyone who can reach {host}: "
        "VIGIL_API_KEY is not set (feedback labels feed retraining); set it, or listen on "
        "127.0.0.1 behind something that authenticates"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve beyond this machine
        return False
