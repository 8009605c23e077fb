"""The protocol's routes in-process, on a service that is not ready: the health probe says so
with 503, the model's routes answer the protocol's error with Retry-After, and nothing is read
past the body limit."""

from __future__ import annotations

import asyncio
import json

from service.errors import ApiError
from service.routing import keyed_paths
from service.v2.endpoint import OpenInference


def not_ready():
    raise ApiError(503, "service not ready; retry later", headers={"Retry-After": "5"})


def call(path: str, method: str = "GET", body: bytes = b"", headers=(), limit: int = 1000):
    rejected: list[str] = []
    app = OpenInference(
        None,
        current=not_ready,
        ready=lambda: False,
        max_body_bytes=lambda: limit,
        on_reject=rejected.append,
    )
    sent: list[dict] = []
    received: list[int] = []

    async def receive():
        received.append(len(body))
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": path, "method": method, "headers": list(headers)}
    asyncio.run(app(scope, receive, send))
    start, answer = sent
    return start["status"], dict(start["headers"]), json.loads(answer["body"]), rejected, received


def test_not_ready_is_a_503_on_every_route_but_liveness():
    assert call("/v2/health/live")[:3:2] == (200, {"live": True})
    status, _, body, _, _ = call("/v2/health/ready")
    assert (status, body) == (503, {"ready": False})
    status, _, body, _, _ = call("/v2/models/vigil-model/ready")
    assert (status, body) == (503, {"name": "vigil-model", "ready": False})
    routes = (("/v2/models/vigil-model", "GET"), ("/v2/models/vigil-model/infer", "POST"))
    for path, method in routes:
        status, headers, body, _, _ = call(path, method, b'{"inputs": []}')
        assert status == 503 and headers[b"retry-after"] == b"5"
        assert body == {"error": "service not ready; retry later"}


def test_the_body_limit_comes_before_reading():
    body = b"x" * 2000
    status, _, answer, rejected, received = call(
        "/v2/models/vigil-model/infer", "POST", body, [(b"content-length", b"2000")]
    )
    assert status == 413 and "limit is 1000 bytes" in answer["error"]
    assert rejected == ["body_too_large"] and received == []  # not a byte read


def test_unknown_routes_and_methods():
    assert call("/v2/models/other")[0] == 404
    assert call("/v2/something")[0] == 404
    status, headers, _, _, _ = call("/v2/health/live", "POST")
    assert status == 405 and headers[b"allow"] == b"GET"


def test_only_infer_paths_are_keyed():
    paths = keyed_paths()
    assert "/predict" in paths
    assert "/v2/models/vigil-model/infer" in paths
    assert "/v2/models/vigil-model/versions/v1/infer" in paths
    assert "/v2/models/vigil-model" not in paths and "/v2/health/ready" not in paths
