"""The BentoML service: ``POST /predict``, ``POST /feedback``, ``GET /model``; BentoML adds
``/metrics``, ``/livez``, ``/readyz`` and ``/docs.json``.

Run with ``python -m service serve`` (or ``bentoml serve service.app:VigilService``). Each worker
loads the production model and opens the inference log in ``__init__``; requests are validated
one by one, then micro-batched (``service.batcher``) into one model call and one log write.
A promotion or rollback is followed live (``service.reload``), without a restart.
"""

# No `from __future__ import annotations`: BentoML reads the API signatures' real types.
import asyncio
import contextlib
import gc
import logging
import threading
import time
from typing import Annotated, Any

import anyio.to_thread
import bentoml
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from service.auth import BearerAuth
from service.batcher import BatcherClosed
from service.errors import ApiError, JsonApi, one_line, quiet_bad_input_tracebacks
from service.metrics import bound_endpoint_labels
from service.predictor import Job
from service.reload import Reloader
from service.routes import make_app
from service.runtime import Runtime
from service.validation import feedback_labels
from vigil.inference_log import InferenceLogError, LogSchemaError
from vigil.prediction_ids import new_request_id
from vigil.settings import get_settings

logger = logging.getLogger("vigil.service")

API_PATHS = frozenset({"/predict", "/feedback"})
KNOWN_PATHS = API_PATHS | {
    "/",
    "/model",
    "/metrics",
    "/livez",
    "/readyz",
    "/healthz",
    "/docs.json",
    "/schema.json",
}
RETRY_START_SECONDS = 5.0

# Read at import only because the decorator needs the worker count; workers re-read in __init__.
_settings = get_settings()


class PredictResponse(BaseModel):
    model_version: str
    request_id: str
    predictions: list[int | str]
    probabilities: list[dict[str, float]]
    prediction_ids: list[str]


class FeedbackResponse(BaseModel):
    accepted: int
    unknown_ids: list[str]


@bentoml.service(
    name="vigil",
    workers=_settings.workers,
    traffic={"timeout": 60},
    # A log line per request costs about a third of a small request's CPU (the arbiter relays
    # every line); request counts and latencies are in /metrics, every prediction is in the
    # inference log. Turn it back on with
    # BENTOML_CONFIG_OPTIONS="services.vigil.logging.access.enabled=true".
    logging={"access": {"enabled": False}},
    # OpenTelemetry spans for every request and every send cost about 40% of a small
    # request's CPU, and nothing exports them unless tracing is configured; the hot paths are
    # left out (override with services.vigil.tracing.excluded_urls when exporting traces).
    tracing={"excluded_urls": "/predict,/feedback"},
)
class VigilService:
    def __init__(self) -> None:
        # Process-wide tweaks of BentoML, made in the worker (not at import, which the arbiter
        # and `bentoml build` also do); both act on the next request.
        quiet_bad_input_tracebacks()
        # BentoML leaves other loggers at WARNING; which model is served belongs in the log.
        logging.getLogger("service").setLevel(logging.INFO)
        bound_endpoint_labels(KNOWN_PATHS, prefixes=("/static_content/", "/assets/"))
        self.settings = get_settings()
        self.runtime: Runtime | None = None
        self.not_ready = "starting"
        self.schema_problem: str | None = None  # safe to show: names the command to run
        self._starting = threading.Lock()
        self._last_attempt = 0.0
        self._reloading: asyncio.Task | None = None
        self._try_start()

    def _try_start(self) -> bool:
        """Load the model and open the log; on failure stay up but not ready, and retry from
        the readiness probe (a worker whose __init__ raises is restarted forever)."""
        with self._starting:
            if self.runtime is not None:
                return True
            self._last_attempt = time.monotonic()
            try:
                self.runtime = Runtime.start(self.settings)
            except LogSchemaError as exc:
                self.not_ready = self.schema_problem = str(exc)
                logger.error("service not ready: %s", exc)
                return False
            except Exception as exc:
                self.schema_problem = None
                self.not_ready = one_line(f"{type(exc).__name__}: {exc}")
                logger.exception("service not ready: %s", self.not_ready)
                return False
            # Everything loaded so far (BentoML, pandas, the model) lives as long as the worker;
            # frozen, a full collection no longer walks it. Those pauses made most of the p99
            # at concurrency 32: 160-180 ms before, 35-110 ms after.
            gc.collect()
            gc.freeze()
            return True

    @bentoml.on_startup
    async def follow_production(self) -> None:
        # A task on the worker's event loop; __init__ has no loop to start it on.
        reloader = Reloader(self.settings, lambda: self.runtime)
        self._reloading = asyncio.get_running_loop().create_task(reloader.run())

    def __is_ready__(self) -> bool:
        if self.runtime is None and time.monotonic() - self._last_attempt > RETRY_START_SECONDS:
            self._try_start()
        if self.runtime is None and self.schema_problem is not None:
            raise HTTPException(503, detail=f"service not ready: {self.schema_problem}")
        return self.runtime is not None

    def _ready(self) -> Runtime:
        if self.runtime is None:
            raise ApiError(503, f"service not ready: {self.not_ready}")
        return self.runtime

    def _error(self, exc: ApiError) -> JSONResponse:
        if exc.reason and 400 <= exc.status < 500:
            count_rejection(exc.reason)
        return exc.response()

    @bentoml.api(route="/predict")
    async def predict(
        self,
        instances: Annotated[
            list[dict[str, Any]],
            Field(description="Feature values by name, one object per instance; null = missing"),
        ],
    ) -> PredictResponse:
        """Predict classes and probabilities; every answered instance is logged first."""
        request_id = new_request_id()  # time-ordered: the inference log's key
        try:
            # One model for the whole request, even if a rollout swaps in another meanwhile.
            model = self._ready().model
            checked = model.validator.validate(instances)
            answer = await model.batcher.submit(Job(request_id, checked.records, checked.unseen))
        except ApiError as exc:
            return self._error(exc)
        except BatcherClosed:
            return self._error(ApiError(503, "service is shutting down; retry"))
        return JSONResponse(
            {
                "model_version": model.bundle.tag,
                "request_id": request_id,
                "predictions": answer.predictions,
                "probabilities": answer.probabilities,
                "prediction_ids": answer.prediction_ids,
            }
        )

    @bentoml.api(route="/feedback")
    async def feedback(
        self,
        labels: Annotated[
            list[dict[str, Any]],
            Field(description='Ground truth: [{"prediction_id": "...", "label": 1}]'),
        ],
    ) -> FeedbackResponse:
        """Join ground-truth labels to logged predictions; a repeated id replaces its label."""
        try:
            runtime = self._ready()
            pairs = feedback_labels(
                labels, runtime.bundle.schema.classes, runtime.settings.max_batch_rows
            )
            if runtime.log is None:
                raise ApiError(503, "the inference log is disabled (VIGIL_UNSAFE_DISABLE_LOGGING)")
            try:
                accepted, unknown = await anyio.to_thread.run_sync(runtime.log.add_feedback, pairs)
            except InferenceLogError as exc:
                logger.error("feedback write failed: %s", exc)
                raise ApiError(
                    503, "inference log unavailable: labels not recorded, retry"
                ) from exc
        except ApiError as exc:
            return self._error(exc)
        if runtime.metrics is not None:
            runtime.metrics.feedback.inc(accepted)
        return JSONResponse({"accepted": accepted, "unknown_ids": unknown})

    @bentoml.on_shutdown
    async def shutdown(self) -> None:
        # Uvicorn has stopped accepting and waited for in-flight requests; drain anyway.
        if self._reloading is not None:
            self._reloading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloading
        if self.runtime is not None:
            await self.runtime.close()


def current_runtime() -> Runtime:
    service = bentoml.get_current_service()
    if service is None:
        raise ApiError(503, "service not ready: starting")
    return service._ready()


def count_rejection(reason: str) -> None:
    service = bentoml.get_current_service()
    runtime = getattr(service, "runtime", None)
    if runtime is not None and runtime.metrics is not None:
        runtime.metrics.reject(reason)


def _max_body_bytes() -> int:
    service = bentoml.get_current_service()
    return getattr(service, "settings", _settings).max_body_bytes


def _api_key() -> str | None:
    service = bentoml.get_current_service()
    key = getattr(service, "settings", _settings).api_key
    return key.get_secret_value() if key is not None else None


VigilService.mount_asgi_app(make_app(current_runtime), path="/")
# First added runs first: reshape BentoML's own 4xx bodies, then check the key.
VigilService.add_asgi_middleware(
    JsonApi, paths=API_PATHS, on_reject=count_rejection, max_body_bytes=_max_body_bytes
)
VigilService.add_asgi_middleware(
    BearerAuth, api_key=_api_key, paths=API_PATHS, on_reject=count_rejection
)
