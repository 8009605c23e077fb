"""The protocol's paths in the published OpenAPI document (``/docs.json``), for this model:
inputs named as its features, its outputs, the row limit and the key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.routing import Plane, on
from service.v2.tensors import DATATYPES, MAX_INPUTS

ERROR_REF = "#/components/schemas/ProtocolError"
ERROR_SCHEMA = {
    "type": "object",
    "description": 'The protocol\'s error: {"error": "<one line>"} naming the input and row',
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}
_JSON = "application/json"


def _error(description: str, retry_after: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {_JSON: {"schema": {"$ref": ERROR_REF}}},
    }
    if retry_after:
        out["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 0}}}
    return out


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "required": required or list(properties), "properties": properties}


def _request_schema(features: list[str] | None, max_rows: int) -> dict[str, Any]:
    name: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 256}
    if features:
        name["description"] = (
            f"A feature ({', '.join(features[:50])}), or any name for one 2-D tensor "
            "[rows, features] of an all-numeric model"
        )
    tensor = {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "additionalProperties": False,
        "properties": {
            "name": name,
            "datatype": {"type": "string", "enum": list(DATATYPES)},
            "shape": {
                "type": "array",
                "minItems": 1,
                "maxItems": 2,
                "items": {"type": "integer", "minimum": 0},
                "description": f"[rows] or [rows, columns]; at most {max_rows} rows",
            },
            "data": {
                "type": "array",
                "description": "Row-major elements, flat or nested by row; null = missing",
            },
            "parameters": {
                "type": "object",
                "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
            },
        },
    }
    output = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "parameters": {
                "type": "object",
                "properties": {"binary_data": {"type": "boolean"}},
            },
        },
    }
    return {
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "maxLength": 256, "description": "Echoed in the answer"},
            "parameters": {
                "type": "object",
                "properties": {"binary_data_output": {"type": "boolean"}},
            },
            "inputs": {"type": "array", "minItems": 1, "maxItems": MAX_INPUTS, "items": tensor},
            "outputs": {
                "type": "array",
                "maxItems": 16,
                "items": output,
                "description": "predict, predict_proba (classifiers), prediction_id",
            },
        },
    }


_TENSOR_OUT = _object(
    {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
    ["name", "datatype", "shape"],
)
_ANSWER = _object(
    {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "outputs": {"type": "array", "items": _TENSOR_OUT},
    },
    ["model_name", "model_version", "outputs"],
)
_METADATA = _object(
    {
        "name": {"type": "string"},
        "versions": {"type": "array", "items": {"type": "string"}},
        "platform": {"type": "string"},
        "inputs": {"type": "array", "items": _TENSOR_OUT},
        "outputs": {"type": "array", "items": _TENSOR_OUT},
        "parameters": {"type": "object"},
    },
    ["name", "versions", "platform", "inputs", "outputs"],
)
_VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The production model's version; any other is a 404",
}


def _operations(
    features: list[str] | None, max_rows: int
) -> dict[str, Callable[[list[dict[str, Any]]], dict[str, Any]]]:
    """The operation of each handler of the routing table's ``PROTOCOL`` plane, given the path
    parameters of its route."""
    tags = ["Open Inference Protocol"]
    server = _object(
        {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        }
    )
    ready = _object({"ready": {"type": "boolean"}})
    model_ready = _object({"name": {"type": "string"}, "ready": {"type": "boolean"}})
    infer_errors = {
        "400": _error("Malformed request, or a bad value (the input and row are named)"),
        "404": _error("Another model or version"),
        "413": _error("More than VIGIL_MAX_BATCH_ROWS rows, or a body over its byte limit"),
        "503": _error("Overloaded, not ready, or the inference log cannot write", True),
    }
    return {
        "server": lambda parameters: {
            "tags": tags,
            "description": "Server metadata",
            "responses": {"200": _ok("name, version, extensions", server)},
        },
        "live": lambda parameters: {
            "tags": tags,
            "responses": {"200": _ok("Live", _object({"live": {"type": "boolean"}}))},
        },
        "ready": lambda parameters: {
            "tags": tags,
            "responses": {"200": _ok("Ready", ready), "503": _ok("Not ready", ready)},
        },
        "model": lambda parameters: {
            "tags": tags,
            "description": "Model metadata: every feature as an input (FP64 numbers, BYTES "
            "categories), in the order a 2-D tensor's columns follow; the outputs",
            "parameters": parameters,
            "responses": {
                "200": _ok("Model metadata", _METADATA),
                "404": _error("Another version"),
                "503": _error("Not ready", retry_after=True),
            },
        },
        "model_ready": lambda parameters: {
            "tags": tags,
            "parameters": parameters,
            "responses": {
                "200": _ok("Ready", model_ready),
                "404": _error("Another version"),
                "503": _ok("Not ready", model_ready),
            },
        },
        "infer": lambda parameters: {
            "tags": tags,
            "description": "Predict. JSON, or Triton's binary tensor extension "
            "(Inference-Header-Content-Length); every answered row is logged first.",
            "parameters": parameters,
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": _request_schema(features, max_rows)}},
            },
            "responses": {
                "200": {
                    "description": "Outputs (binary ones after the JSON header)",
                    "content": {
                        _JSON: {"schema": _ANSWER},
                        "application/octet-stream": {"schema": {"type": "string"}},
                    },
                },
                **infer_errors,
            },
        },
    }


def add_protocol_paths(
    document: dict[str, Any], *, features: list[str] | None, max_rows: int, keyed: bool
) -> dict[str, Any]:
    """``document`` with the routing table's documented ``PROTOCOL`` routes and their schemas
    added (a keyed route asks for the key when one is set)."""
    document.setdefault("components", {}).setdefault("schemas", {})["ProtocolError"] = ERROR_SCHEMA
    operations = _operations(features, max_rows)
    paths = document.setdefault("paths", {})
    for route in on(Plane.PROTOCOL):
        if not route.documented:
            continue
        operation = operations[route.handler]([_VERSION] if "{version}" in route.path else [])
        if keyed and route.keyed:
            operation["responses"]["401"] = _error(
                "Missing or wrong API key (Authorization: Bearer <key>)"
            )
            operation["security"] = [{"bearer": []}]
        (method,) = route.methods
        paths[route.served_path] = {method.lower(): operation}
    return document
