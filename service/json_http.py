"""The JSON API's HTTP plumbing, as ASGI middleware in front of BentoML: the body read with its
limit and the watch for a caller that goes away (``service.http_request``), the JSON parser, and
error bodies reshaped into the contract's ``{"error", "detail"}``. The errors themselves are in
``service.errors``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Container
from http import HTTPStatus
from typing import Any, NamedTuple, Unpack

import pydantic_core
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import MAX_DETAIL, ApiError, collapsed, problem, summary
from service.http_request import BodyLimits, BodyReadingMiddleware, BodyTooLarge, ClientGone


class JsonApi(BodyReadingMiddleware):
    """ASGI middleware for the API paths, which speak JSON only.

    The body is read here, up to ``max_body_bytes()`` (413 past it, with or without a
    Content-Length), and handed to ``precheck(path, body)``, which parses and validates it and
    raises ``ApiError`` for a bad one: BentoML's own parsing (pydantic's, which builds one error
    per bad item of a list) only ever sees a body already known to be good. ``precheck`` may
    return a body to pass on instead (its result then travels to the endpoint by other means),
    so that BentoML does not parse a large body a second time. Bodies are parsed as JSON
    whatever the Content-Type (``curl -d`` sends a form type).

    While the app works on a request, the connection is watched: a caller that goes away has
    its request cancelled (a queued request is then dropped, see ``service.batcher``) and
    ``on_gone()`` is called. Errors BentoML and Starlette answer themselves (a wrong method:
    plain text; a timeout or crash: ``{"error"}`` alone) are rewritten into the contract's
    shape; our own error bodies pass unchanged.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: Container[str],
        precheck: Callable[[str, bytes], bytes | None] = lambda path, body: None,
        on_gone: Callable[[], None] = lambda: None,
        **limits: Unpack[BodyLimits],
    ):
        super().__init__(app, **limits)
        self.paths = paths
        self.precheck = precheck
        self.on_gone = on_gone

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        request = self.request(scope, receive)
        try:
            body = await request.body()
            if scope.get("method") == "POST":  # other methods get BentoML's own 405
                body = self.precheck(scope["path"], body) or body
        except ClientGone:
            return
        except BodyTooLarge as exc:
            msg = str(exc)
            error = ApiError(413, msg, [problem(["body"], msg)], reason=exc.reason)
            await self._refuse(error, scope, receive, send)
            return
        except ApiError as exc:
            await self._refuse(exc, scope, receive, send)
            return
        headers = [
            (k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")
        ]
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        scope = {**scope, "headers": headers}
        await request.run_watched(self.app, scope, body, self._reshaping(send), self.on_gone)

    async def _refuse(self, error: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
        if error.reason:
            self.on_reject(error.reason)
        await error.response()(scope, receive, send)

    def _reshaping(self, send: Send) -> Send:
        held: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def reshaping_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held["start"] = message  # hold the head until the whole body is seen
                return
            if "start" in held and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                start = held.pop("start")
                body, reason = reshape(start["status"], b"".join(chunks))
                if reason:
                    self.on_reject(reason)
                headers = [
                    (k, v)
                    for k, v in start.get("headers", [])
                    if k.lower() not in (b"content-length", b"content-type")
                ]
                headers += [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                ]
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        return reshaping_send


class Parsed(NamedTuple):
    value: Any
    # Parsed by pydantic's parser, which BentoML's request parsing also uses: BentoML would
    # accept this body as JSON too.
    by_pydantic: bool


def parse_json(body: bytes) -> Parsed:
    """The request body as JSON, or a 400 ``malformed``: never an exception of the parser's
    (a 5,000-digit integer, nesting deep enough to exhaust the stack, bytes that are no text).

    The value is ``json.loads``'s. pydantic's parser gives the same values, twice as fast, for
    every body it accepts; ``json.loads`` decides the rest (a BOM, UTF-16, lone surrogates,
    nesting deeper than 200), with its own value or error."""
    try:
        return Parsed(pydantic_core.from_json(body), True)
    except ValueError:
        pass
    try:
        return Parsed(json.loads(body), False)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not a valid JSON document"
        msg = f"malformed JSON: {reason}"
        raise ApiError(400, msg, [problem(["body"], msg)], reason="malformed") from None


_PYDANTIC_REASONS = {"json_invalid": "malformed", "missing": "missing_field"}


def reshape(status: int, raw: bytes) -> tuple[bytes, str | None]:
    """The body in the contract's shape, and the reason to count it under in
    vigil_input_rejected_total (None: already counted, or not a rejected input)."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if _is_ours(data):
        return raw, None
    detail: list[dict[str, Any]] = []
    reason = None
    if status == 500:
        # A crash's text (an exception message: paths, hosts, values) stays in the server log.
        error = "internal server error (HTTP 500); see the server log"
    elif isinstance(data, dict) and isinstance(data.get("detail"), list):
        reason = "malformed"
        for item in data["detail"]:
            if not isinstance(item, dict):
                continue
            loc = [p for p in item.get("loc", []) if isinstance(p, str | int)]
            kind = str(item.get("type", ""))
            msg = str(item.get("msg", "invalid value"))
            if kind == "json_invalid":
                msg = f"malformed JSON: {msg}"
            elif not loc:
                msg = f"expected a JSON object: {msg}"
            detail.append(problem(loc, msg))
            if len(detail) == 1:
                reason = _PYDANTIC_REASONS.get(kind, "wrong_type")
        error = summary(detail) if detail else str(data.get("error", "bad request"))
    elif isinstance(data, list) and data and isinstance(data[0], dict) and "error" in data[0]:
        error = str(data[0]["error"])
    elif isinstance(data, dict) and "error" in data:
        error = str(data["error"])
    else:
        error = f"{_phrase(status)} (HTTP {status})"
    body = {"error": collapsed(error), "detail": detail[:MAX_DETAIL]}
    return json.dumps(body).encode(), reason


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "request failed"


def _is_ours(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and set(data) == {"error", "detail"}
        and isinstance(data["detail"], list)
        and all(isinstance(d, dict) and set(d) == {"loc", "msg"} for d in data["detail"])
    )


class _DropBadInputTracebacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ValidationError)


def quiet_bad_input_tracebacks() -> None:
    """BentoML logs a full traceback at ERROR for every body that fails its parsing: a client's
    mistake (answered 400, and in the access log), not a server error."""
    logger = logging.getLogger("bentoml._internal.server.http_app")
    if not any(isinstance(f, _DropBadInputTracebacks) for f in logger.filters):
        logger.addFilter(_DropBadInputTracebacks())
