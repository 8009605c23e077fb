"""The protocol's REST routes, as ASGI middleware in front of BentoML's app: the routing table's
``PROTOCOL`` routes (``service.routing``), each answered by its handler here.

Infer goes the way ``/predict`` goes: the key check and the bound on requests in flight run
before this (the table marks the infer routes keyed and admitted); here the body is read up to
the body limit (``service.http_request``), decoded (``tensors``), checked by the model's
``InstanceValidator`` and handed to the one data plane (``service.dataplane``), whose
micro-batcher logs every row before it is answered. Errors are the protocol's
``{"error": "..."}``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, NamedTuple, Unpack

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from service import dataplane
from service.errors import ApiError
from service.http_request import BodyLimits, BodyReadingMiddleware, BodyTooLarge, ClientGone
from service.routing import Plane, Route, find
from service.v2.inputs import check_form, instances, numeric_instances, problem_of
from service.v2.metadata import MODEL_NAME, model_metadata, server_metadata
from service.v2.tensors import (
    HEADER_LENGTH,
    Output,
    ProtocolError,
    decode_request,
    encode_answer,
    header_length,
)
from service.validation import Instances
from vigil.log.format import dumps_bytes
from vigil.log.prediction_ids import new_request_id

# The status, the body and the extra headers of an answer.
Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


class Call(NamedTuple):
    """What a route's handler is given: the request, and the model version its path names."""

    scope: Scope
    receive: Receive
    version: str | None


logger = logging.getLogger(__name__)


class OpenInference(BodyReadingMiddleware):
    """Answers the routing table's ``PROTOCOL`` routes (``service.routing``). ``current()``
    gives the worker's WorkerState or raises ``ApiError`` (503); ``ready()`` says whether the
    service is ready (and retries a failed start, as /readyz does); ``max_body_bytes`` and
    ``on_reject`` as ``BodyReadingMiddleware`` takes them."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        current: Callable[[], Any],
        ready: Callable[[], bool],
        on_shed: Callable[[str], None] = lambda reason: None,
        **limits: Unpack[BodyLimits],
    ):
        super().__init__(app, **limits)
        self.current = current
        self.ready = ready
        self.on_shed = on_shed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        found = find(Plane.PROTOCOL, path) if path else None
        if found is None:
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        try:
            status, body, headers = await self._route(*found, method, scope, receive)
        except ClientGone:
            return  # nobody to answer
        except BodyTooLarge as exc:
            self.on_reject(exc.reason)
            status, body, headers = 413, _error(str(exc)), []
        except (ProtocolError, ApiError) as exc:
            if exc.reason and 400 <= exc.status < 500:
                self.on_reject(exc.reason)
            headers = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
            status, body = exc.status, _error(exc.error)
        except Exception:
            # Answered here: BentoML's timeout layer would otherwise wait for a response that
            # never starts. The exception's text stays in the server log.
            logger.exception("V2 request to %s failed", path[:200])
            status, body, headers = 500, _error("internal server error; see the server log"), []
        if not any(k == b"content-type" for k, _ in headers):
            headers.append((b"content-type", b"application/json"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _route(
        self, route: Route, params: dict[str, str], method: str, scope: Scope, receive: Receive
    ) -> Answer:
        name, version = params.get("model"), params.get("version")
        if name is not None and name != MODEL_NAME:
            raise ProtocolError(404, f"unknown model; this server serves {MODEL_NAME!r}", None)
        if not route.allows(method):
            allowed = ", ".join(route.methods)
            raise ProtocolError(
                405,
                f"method {method[:10]} not allowed here; use {allowed}",
                None,
                headers={"Allow": allowed},
            )
        return await self.handlers[route.handler](self, Call(scope, receive, version))

    async def _server(self, call: Call) -> Answer:
        return 200, dumps_bytes(server_metadata()), []

    async def _live(self, call: Call) -> Answer:
        return 200, b'{"live":true}', []

    async def _server_ready(self, call: Call) -> Answer:
        ready = await self._ready()
        return (200 if ready else 503), dumps_bytes({"ready": ready}), []

    async def _model_ready(self, call: Call) -> Answer:
        if not await self._ready():
            return 503, dumps_bytes({"name": MODEL_NAME, "ready": False}), []
        self._model(call.version)
        return 200, dumps_bytes({"name": MODEL_NAME, "ready": True}), []

    async def _metadata(self, call: Call) -> Answer:
        return 200, dumps_bytes(model_metadata(self._model(call.version))), []

    async def _not_found(self, call: Call) -> Answer:
        raise ProtocolError(404, f"not found: see GET /v2/models/{MODEL_NAME}", None)

    async def _ready(self) -> bool:
        # In a thread: a service not ready retries its start here, which waits on the
        # database; the loop must keep answering /livez meanwhile.
        return await anyio.to_thread.run_sync(self.ready)

    def _model(self, version: str | None, runtime: Any = None) -> Any:
        """The model served now; 404 when ``version`` names another."""
        model = (runtime or self.current()).model
        if version is not None and version != model.bundle.tag:
            raise ProtocolError(
                404,
                f"model version not served; {MODEL_NAME} is served at version {model.bundle.tag}",
                None,
            )
        return model

    async def _infer(self, call: Call) -> Answer:
        scope, version = call.scope, call.version
        # Bounded before anything is read into memory, let alone decoded.
        body = await self.request(scope, call.receive).body()
        runtime = self.current()
        # A malformed request is a 400 whatever the version it names. Inputs that do not fit
        # the model are refused before their binary data is decoded.
        served = runtime.model.validator
        request = decode_request(
            body,
            header_length(scope["headers"]),
            runtime.settings.max_batch_rows,
            check=lambda inputs: check_form(inputs, served.names, served.numeric),
        )
        request_id = new_request_id()

        def validate(model) -> Instances:
            validator = model.validator
            checked = numeric_instances(request.inputs, validator.names, validator.numeric)
            if checked is not None:
                return checked
            rows = instances(request.inputs, validator.names, validator.numeric)
            try:
                return validator.validate(rows, "inputs")
            except ApiError as exc:
                raise problem_of(exc, request.inputs, validator.names) from None

        # A named version is a contract: that version answers it, never the canary.
        predicted = await dataplane.predict(
            runtime,
            request_id,
            validate,
            model=self._model(version, runtime),
            split=version is None,
            on_shed=self.on_shed,
        )
        model, answer = predicted.model, predicted.answer
        outputs = [
            Output(*output)
            for output in model.bundle.task.protocol_outputs(answer.fields, model.inference.classes)
        ]
        outputs.append(Output("prediction_id", "BYTES", answer.prediction_ids))
        selected, binary = _select(outputs, request.outputs, request.binary)
        head: dict[str, Any] = {"model_name": MODEL_NAME, "model_version": model.bundle.tag}
        if request.id is not None:
            head["id"] = request.id
        head["parameters"] = {"request_id": request_id}
        body, json_length = encode_answer(head, selected, binary)
        if json_length is None:
            return 200, body, []
        return (
            200,
            body,
            [
                (b"content-type", b"application/octet-stream"),
                (HEADER_LENGTH.encode(), str(json_length).encode()),
            ],
        )

    # The handler of each route of the table's PROTOCOL plane, by its name there.
    handlers: ClassVar[dict[str, Callable[[OpenInference, Call], Awaitable[Answer]]]] = {
        "server": _server,
        "live": _live,
        "ready": _server_ready,
        "model": _metadata,
        "model_ready": _model_ready,
        "infer": _infer,
        "not_found": _not_found,
    }


def _select(
    outputs: list[Output], requested: dict[str, bool] | None, binary: bool
) -> tuple[list[Output], dict[str, bool]]:
    if requested is None:
        return outputs, {output.name: binary for output in outputs}
    by_name = {output.name: output for output in outputs}
    for name in requested:
        if name not in by_name:
            raise ProtocolError(
                400,
                f"output {name[:100]!r} unknown; this model's outputs are {', '.join(by_name)}",
                "unknown_field",
            )
    return [by_name[name] for name in requested], requested


def _error(msg: str) -> bytes:
    return dumps_bytes({"error": msg})
