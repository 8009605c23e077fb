"""Checks of the service's own that Schemathesis runs on every answer in ``test_fuzz.py``
(loaded through ``SCHEMATHESIS_HOOKS``): no stack trace in any body, and every API error is the
contract's object, a 400 or 413 saying where the problem is; on the Open Inference Protocol's
paths, the protocol's ``{"error": "<one line>"}``."""

from __future__ import annotations

import json

import schemathesis

API_PATHS = ("/predict", "/feedback")


@schemathesis.check
def no_stack_trace(ctx, response, case) -> None:
    text = response.content.decode("utf-8", "replace")
    if "Traceback (most recent call last)" in text or 'File "/' in text:
        raise AssertionError(f"a stack trace or source path in the body: {text[:500]}")


@schemathesis.check
def protocol_errors_are_one_line(ctx, response, case) -> None:
    if not case.path.startswith("/v2") or response.status_code < 400:
        return
    body = _json(response)
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        if response.status_code == 503 and isinstance(body, dict) and "ready" in body:
            return  # a readiness probe's answer
        raise AssertionError(f"not the protocol's error object: {body}")
    if "\n" in body["error"]:
        raise AssertionError(f"error is not one line: {body}")


@schemathesis.check
def errors_name_the_field(ctx, response, case) -> None:
    if case.path not in API_PATHS or response.status_code < 400:
        return
    body = _json(response)
    if not isinstance(body, dict) or set(body) != {"error", "detail"}:
        raise AssertionError(f"not the contract's error object: {body}")
    if not isinstance(body["error"], str) or "\n" in body["error"]:
        raise AssertionError(f"error is not one line: {body}")
    if response.status_code in (400, 413) and not (body["detail"] and body["detail"][0]["loc"]):
        raise AssertionError(f"a {response.status_code} that names no location: {body}")


def _json(response):
    try:
        return json.loads(response.content)
    except ValueError:
        raise AssertionError(
            f"an error body that is not JSON: {response.content[:200]!r}"
        ) from None
