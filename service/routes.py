"""GET routes BentoML's ``@bentoml.api`` (POST only) cannot express, as a mounted Starlette app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def model_card(
    contract: dict[str, Any], tag: str, inference: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Tag, feature schema, held-out metrics and data fingerprint (plus the rest of the
    model's saved contract: parameters, versions, lineage)."""
    return {
        **contract,
        "model_version": tag,
        "tag": tag,
        "schema": contract.get("schema"),
        "metrics": contract.get("metrics", {}),
        "dataset_sha256": contract.get("dataset_sha256"),
        # The runtime serving it now (VIGIL_INFERENCE), not only what training decided.
        "inference": inference or contract.get("inference"),
    }


def make_app(current: Callable[[], Any]) -> Starlette:
    """``current()`` gives the worker's Runtime, or raises ``ApiError`` (503) when not ready."""
    from service.errors import ApiError

    async def model(_: Request) -> JSONResponse:
        try:
            runtime = current()
        except ApiError as exc:
            return exc.response()
        model = runtime.model  # one model, even if a rollout swaps it meanwhile
        return JSONResponse(
            model_card(model.bundle.contract, model.bundle.tag, model.inference_card())
        )

    return Starlette(routes=[Route("/model", model, methods=["GET"])])
