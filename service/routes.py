"""The routing table's ``CARD`` routes (``service.routing``): GET routes BentoML's ``@bentoml.api``
(POST only) cannot express, as a Starlette app mounted at "/"."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.routing import Plane, on
from vigil.tasks import task_for

_PRIVATE = frozenset({"dataset_source", "holdout"})
# How the model was made: shown only to callers with the key when one is set (they tell an
# attacker which code and data to aim at).
_KEYED = frozenset({"params", "lineage", "git_commit", "versions"})


def model_card(
    contract: dict[str, Any],
    tag: str,
    inference: dict[str, Any] | None = None,
    *,
    full: bool = True,
) -> dict[str, Any]:
    """Tag, feature schema, held-out metrics and data fingerprint (plus the rest of the
    model's saved contract: parameters, versions, lineage, unless ``full`` is False). Not
    shown to callers: where the training data lives on the trainer's disk (only its file
    name), nor the stored holdout."""
    hidden = _PRIVATE if full else _PRIVATE | _KEYED
    public = {k: v for k, v in contract.items() if k not in hidden}
    source = contract.get("dataset_source")
    if source:
        public["dataset_source"] = PurePath(str(source)).name
    return {
        **public,
        "model_version": tag,
        "tag": tag,
        "task": task_for(contract).name,
        "schema": contract.get("schema"),
        "metrics": contract.get("metrics", {}),
        "dataset_sha256": contract.get("dataset_sha256"),
        # The runtime serving it now (VIGIL_INFERENCE), not only what training decided.
        "inference": inference or contract.get("inference"),
    }


def make_app(
    current: Callable[[], Any], api_key: Callable[[], str | None] = lambda: None
) -> Starlette:
    """``current()`` gives the worker's WorkerState, or raises ``ApiError`` (503) when not ready;
    ``api_key()`` the key, if one is set, that /model's full card needs."""
    from service.auth import authorized
    from service.errors import ApiError

    async def model(request: Request) -> JSONResponse:
        key = api_key()
        full = not key or authorized(request.scope, key)
        try:
            runtime = current()
        except ApiError as exc:
            return exc.response()
        model = runtime.model  # one model, even if a rollout swaps it meanwhile
        return JSONResponse(
            model_card(model.bundle.contract, model.bundle.tag, model.inference_card(), full=full)
        )

    handlers = {"model": model}
    return Starlette(
        routes=[
            Route(route.path, handlers[route.handler], methods=list(route.methods))
            for route in on(Plane.CARD)
        ]
    )
