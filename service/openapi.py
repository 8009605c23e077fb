"""The OpenAPI document served at ``/docs.json``: BentoML's, corrected to what the service does.

BentoML 1.4 generates it from the endpoints' Python types, so it documents an error body of
``{"error": str, "detail": str}``, 404 and 500 answers the API never gives, instances as any
objects, no key, and no ``/model``. ``published`` rewrites it from the production model's
schema and the settings: each instance's features (numbers within float32's range, categories
up to ``VIGIL_MAX_CATEGORY_CHARS``, null for missing), the row limit, the model's classes,
the contract's error object for 400, 401, 413 and 503 (with Retry-After), and the bearer key
when one is set. Clients and fuzzers (``tests/service/test_fuzz.py``) read this document.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ApiError
from service.routing import Plane, on, route_of
from vigil.tasks import Task

FLOAT32_MAX = float(np.finfo(np.float32).max)
ERROR_REF = "#/components/schemas/Error"
_BENTOML_ERRORS = ("InvalidArgument", "NotFound", "InternalServerError")
_DROPPED_STATUSES = ("404", "500")  # never answered on the API paths

ERROR_SCHEMA = {
    "type": "object",
    "description": 'Every error: {"error": "<one line>", "detail": [{"loc": [...], "msg": "..."}]}',
    "required": ["error", "detail"],
    "additionalProperties": False,
    "properties": {
        "error": {"type": "string", "description": "One line, never a stack trace"},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "additionalProperties": False,
                "properties": {
                    "loc": {
                        "type": "array",
                        "description": 'Where: ["instances", 3, "mean radius"], or ["body"]',
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    },
                    "msg": {"type": "string"},
                },
            },
        },
    },
}


def _error(description: str, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before retrying",
                "schema": {"type": "integer", "minimum": 0},
            }
        }
    return response


def _api_errors(keyed: bool) -> dict[str, Any]:
    errors = {
        "400": _error("Malformed JSON, a missing or unknown field, a wrong type or value"),
        "413": _error("More than VIGIL_MAX_BATCH_ROWS items, or a body over its byte limit"),
        "503": _error("Overloaded, not ready, or the inference log cannot write", True),
    }
    if keyed:
        errors["401"] = _error("Missing or wrong API key (Authorization: Bearer <key>)")
    return errors


def instance_schema(
    numeric: list[str],
    categories: dict[str, frozenset[str]],
    *,
    max_category_chars: int,
    strict: bool,
) -> dict[str, Any]:
    """One instance: every feature required (null for a missing value), no other key."""
    properties: dict[str, Any] = {}
    for name in numeric:
        properties[name] = {
            "type": "number",
            "nullable": True,
            "minimum": -FLOAT32_MAX,
            "maximum": FLOAT32_MAX,
        }
    for name, known in categories.items():
        category: dict[str, Any] = {"type": "string", "nullable": True}
        if strict:
            category["enum"] = [*sorted(known), None]
        else:
            category["maxLength"] = max_category_chars
            category["description"] = f"Seen in training: {sorted(known)[:50]}; others accepted"
        properties[name] = category
    return {
        "type": "object",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }


def published(
    spec: dict[str, Any],
    *,
    model_version: str | None,
    instance: dict[str, Any] | None,
    classes: list[Any] | None,
    max_rows: int,
    keyed: bool,
    task: Task | None = None,
) -> dict[str, Any]:
    """``spec`` (BentoML's, as a dict) corrected; ``instance``, ``classes`` and ``task`` are
    None while no model is loaded (then any objects are documented). The model's task
    (``vigil.tasks``) describes its labels and its answer."""
    out = copy.deepcopy(spec)
    out["info"] = {
        "title": "Vigil prediction service",
        "description": "Predictions from the production model, each logged for drift checks.",
        "version": model_version or "not ready",
    }
    schemas = out.setdefault("components", {}).setdefault("schemas", {})
    for name in _BENTOML_ERRORS:
        schemas.pop(name, None)
    schemas["Error"] = ERROR_SCHEMA
    if keyed:
        out["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    paths = out.setdefault("paths", {})

    items_of = {"predict": instance, "feedback": _label_schema(task, classes)}
    for route in on(Plane.API):
        path, field, items = route.path, route.body_field, items_of[route.handler]
        operation = paths.get(path, {}).get(route.methods[0].lower())
        if operation is None:
            continue
        operation["requestBody"]["required"] = True  # BentoML leaves it optional
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        body = schemas.get(body["$ref"].rsplit("/", 1)[1], body) if "$ref" in body else body
        body["additionalProperties"] = False
        prop = body["properties"][field]
        prop.update(minItems=1, maxItems=max_rows)
        if items is not None:
            prop["items"] = items
        # The same body is also listed as a component (unreferenced): keep the two equal.
        component = f"{operation.get('x-bentoml-name')}__Input"
        if component in schemas:
            schemas[component] = copy.deepcopy(body)
        # BentoML's keys are ints (HTTP status values); the document's are strings.
        responses = operation["responses"] = {str(k): v for k, v in operation["responses"].items()}
        for status in _DROPPED_STATUSES:
            responses.pop(status, None)
        responses.update(_api_errors(keyed and route.keyed))
        if keyed and route.keyed:
            operation["security"] = [{"bearer": []}]

    predict = route_of(Plane.API, "predict").path
    predict_ok = paths.get(predict, {}).get("post", {}).get("responses", {}).get("200")
    if predict_ok is not None and task is not None and classes is not None:
        predict_ok["content"] = {"application/json": {"schema": _answer_schema(task, classes)}}

    paths[route_of(Plane.CARD, "model").path] = {
        "get": {
            "tags": ["Service APIs"],
            "description": "The production model's tag, feature schema, held-out metrics, "
            "training data fingerprint and inference runtime.",
            "responses": {
                "200": {
                    "description": "The model card",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "503": _error("Not ready", True),
            },
        }
    }
    readyz = paths.get(route_of(Plane.BENTOML, "readyz").path, {})
    if "get" in readyz:
        readyz["get"]["responses"]["503"] = {"description": "Not ready"}
    metrics = paths.get(route_of(Plane.BENTOML, "metrics").path, {})
    if "get" in metrics:
        metrics["get"]["responses"]["200"]["content"] = {
            "text/plain": {"schema": {"type": "string"}}
        }
    return out


def _answer_schema(task: Task, classes: list[Any]) -> dict[str, Any]:
    """The ``/predict`` answer of this model: its task decides the prediction keys."""
    ids = {"type": "array", "items": {"type": "string"}}
    properties = {
        "model_version": {"type": "string"},
        "request_id": {"type": "string"},
        **task.answer_schema(classes),
        "prediction_ids": {**ids, "description": "The ids /feedback takes, in order"},
    }
    return {
        "type": "object",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }


def _label_schema(task: Task | None, classes: list[Any] | None) -> dict[str, Any] | None:
    if task is None or classes is None:
        return None
    return {
        "type": "object",
        "required": ["prediction_id", "label"],
        "additionalProperties": False,
        "properties": {
            "prediction_id": {"type": "string", "minLength": 1, "maxLength": 64},
            "label": task.label_schema(classes),
        },
    }


class PublishedDocs:
    """ASGI middleware answering ``GET /docs.json`` with ``document()`` (a dict), before
    BentoML's own route."""

    def __init__(self, app: ASGIApp, *, document: Callable[[], dict[str, Any]], path: str):
        self.app = app
        self.document = document
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        from starlette.responses import JSONResponse

        try:
            response = JSONResponse(self.document())
        except ApiError as exc:
            response = exc.response()
        await response(scope, receive, send)
