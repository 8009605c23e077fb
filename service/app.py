"""The BentoML service, assembled from the routing table (``service.routing``): its ``API``
endpoints (``POST /predict``, ``POST /feedback``), the mounted app (``GET /model``), the Open
Inference Protocol's router and the middleware in front of them; BentoML adds ``/metrics``,
``/livez`` and ``/readyz``.

Run with ``python -m service serve`` (or ``bentoml serve service.app:VigilService``). Each worker
loads the production model and opens the inference log in ``__init__``; requests are validated
one by one, then micro-batched (``service.batcher``) into one model call and one log write.
A promotion, rollback or candidate change is followed live (``service.follow``), without a
restart.
"""

# No `from __future__ import annotations`: BentoML reads the API signatures' real types.
import asyncio
import contextlib
import contextvars
import gc
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

import anyio.to_thread
import bentoml
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from service import dataplane
from service.admission import Admission
from service.auth import BearerAuth
from service.errors import ApiError, collapsed, problem, summary
from service.follow import PointerFollower
from service.json_http import JsonApi, parse_json, quiet_bad_input_tracebacks
from service.metrics import LoadFailureMetrics, bound_endpoint_labels
from service.openapi import PublishedDocs, instance_schema, published
from service.routes import make_app
from service.routing import (
    Plane,
    admitted_paths,
    body_fields,
    endpoint_labels,
    json_paths,
    keyed_paths,
    route_of,
)
from service.timeouts import cancel_request_timers
from service.v2 import endpoint as v2
from service.v2.openapi import add_protocol_paths
from service.validation import BODY_FLOOR_BYTES, feedback_labels
from service.worker import WorkerState
from vigil.inference import NotServable
from vigil.log.format import dumps_bytes
from vigil.log.inference_log import InferenceLogError, LogSchemaError
from vigil.log.prediction_ids import new_request_id
from vigil.registry.signing import ModelSignatureError
from vigil.settings import get_settings

logger = logging.getLogger("vigil.service")

RETRY_START_SECONDS = 5.0
# A collection starts once this many more containers were made than freed. Requests in flight
# hold thousands (a parsed 100-row body is 100 dicts): at Python's default of 700 a collection
# ran about once per 100-row request, promoted the requests in flight to older generations, and
# all collections took 10% of a worker's CPU (none ran at 50,000). Containers freed by reference
# counting do not count, so cyclic garbage still starts one before 50,000 accumulate.
GC_THRESHOLDS = (50_000, 10, 10)
NOT_READY = "service not ready; retry later (the reason is in the server log)"
PREDICT_PATH = route_of(Plane.API, "predict").path
FEEDBACK_PATH = route_of(Plane.API, "feedback").path

# The body as checked by ``precheck`` (in the middleware), for the endpoint of that request:
# (what checked it, the result, the field as sent). BentoML then gets a stand-in body with an
# empty list (``_STAND_INS``) instead of parsing the whole body again.
_prechecked: contextvars.ContextVar[tuple[Any, Any, Any] | None] = contextvars.ContextVar(
    "vigil_prechecked", default=None
)

# Read at import only because the decorator needs the worker count; workers re-read in __init__.
_settings = get_settings()


class PredictResponse(BaseModel):
    model_version: str
    request_id: str
    predictions: list[int | str | float]
    # Classifiers only: a regressor's answer has no such key.
    probabilities: list[dict[str, float]] | None = None
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
    tracing={"excluded_urls": "/predict,/feedback,/v2/"},
)
class VigilService:
    def __init__(self) -> None:
        # Process-wide tweaks of BentoML, made in the worker (not at import, which the arbiter
        # and `bentoml build` also do); they act on the next request.
        quiet_bad_input_tracebacks()
        cancel_request_timers()
        # One native thread per worker: OpenMP and BLAS pools (HistGradientBoosting's predict,
        # numpy) sized to the machine oversubscribe the cores the workers share.
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        # BentoML leaves other loggers at WARNING; which model is served belongs in the log.
        logging.getLogger("service").setLevel(logging.INFO)
        known, prefixes = endpoint_labels()
        bound_endpoint_labels(known, prefixes=prefixes)
        self.settings = get_settings()
        self.runtime: WorkerState | None = None
        # Under `bentoml serve` values live in the multiprocess files whatever the registry.
        self.load_failures = LoadFailureMetrics(CollectorRegistry())
        self.not_ready = "starting"
        self.schema_problem: str | None = None  # safe to show: names the command or setting
        self._starting = threading.Lock()
        self._last_attempt = 0.0
        self._following: asyncio.Task | None = None
        self._try_start()

    def _try_start(self) -> bool:
        """Load the model and open the log; on failure stay up but not ready, and retry from
        the readiness probe (a worker whose __init__ raises is restarted forever)."""
        with self._starting:
            if self.runtime is not None:
                return True
            self._last_attempt = time.monotonic()
            try:
                self.runtime = WorkerState.start(
                    self.settings, on_load_failure=self.load_failures.record
                )
            except (LogSchemaError, NotServable, ModelSignatureError) as exc:
                # Our own words (the command to run, the setting to change): safe to show.
                self.not_ready = self.schema_problem = str(exc)
                logger.error("service not ready: %s", exc)
                return False
            except Exception as exc:
                self.schema_problem = None
                self.not_ready = collapsed(f"{type(exc).__name__}: {exc}")
                logger.exception("service not ready: %s", self.not_ready)
                return False
            # Everything loaded so far (BentoML, pandas, the model) lives as long as the worker;
            # frozen, a full collection no longer walks it. Those pauses made most of the p99
            # at concurrency 32: 160-180 ms before, 35-110 ms after.
            gc.collect()
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)
            return True

    @bentoml.on_startup
    async def follow_production(self) -> None:
        # A task on the worker's event loop; __init__ has no loop to start it on.
        follower = PointerFollower(
            self.settings, lambda: self.runtime, on_load_failure=self.load_failures.record
        )
        self._following = asyncio.get_running_loop().create_task(follower.run())

    def __is_ready__(self) -> bool:
        if self.runtime is None and time.monotonic() - self._last_attempt > RETRY_START_SECONDS:
            self._try_start()
        if self.runtime is None and self.schema_problem is not None:
            raise HTTPException(503, detail=f"service not ready: {self.schema_problem}")
        return self.runtime is not None

    def _ready(self) -> WorkerState:
        if self.runtime is None:
            # The reason (exception text: hosts, users, paths) is logged, never sent.
            reason = (
                f"service not ready: {self.schema_problem}" if self.schema_problem else NOT_READY
            )
            raise ApiError(503, reason, headers={"Retry-After": "5"})
        return self.runtime

    def _error(self, exc: ApiError) -> JSONResponse:
        if exc.reason and 400 <= exc.status < 500:
            count_rejection(exc.reason)
        return exc.response()

    @bentoml.api(route=PREDICT_PATH)
    async def predict(
        self,
        instances: Annotated[
            list[dict[str, Any]],
            Field(description="Feature values by name, one object per instance; null = missing"),
        ],
    ) -> PredictResponse:
        """Predict (classes and probabilities, or numbers); every answered instance is logged
        first."""
        request_id = new_request_id()  # time-ordered: the inference log's key
        try:
            # One model for the whole request, even if a rollout swaps in another meanwhile.
            predicted = await dataplane.predict(
                self._ready(),
                request_id,
                lambda model: _take_prechecked(
                    model.validator, model.validator.validate, instances
                ),
                on_shed=count_shed,
            )
        except ApiError as exc:
            return self._error(exc)
        model, answer = predicted.model, predicted.answer
        # pydantic_core's encoder: a fifth of json.dumps's cost for a 100-row answer.
        body = dumps_bytes(
            {
                "model_version": model.bundle.tag,
                "request_id": request_id,
                **answer.fields,
                "prediction_ids": answer.prediction_ids,
            }
        )
        return Response(body, media_type="application/json")

    @bentoml.api(route=FEEDBACK_PATH)
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
            bundle = runtime.bundle
            pairs = _take_prechecked(
                bundle, lambda sent: _feedback_pairs(runtime, bundle, sent), labels
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
        if self._following is not None:
            self._following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._following
        if self.runtime is not None:
            await self.runtime.close()


def current_runtime() -> WorkerState:
    service = bentoml.get_current_service()
    if service is None:
        raise ApiError(503, NOT_READY)
    return service._ready()


def _is_ready() -> bool:
    """What /readyz says (retrying a failed start), as a boolean."""
    service = bentoml.get_current_service()
    try:
        return service is not None and bool(service.__is_ready__())
    except HTTPException:
        return False


def _metrics():
    runtime = getattr(bentoml.get_current_service(), "runtime", None)
    return getattr(runtime, "metrics", None)


def count_rejection(reason: str) -> None:
    if (metrics := _metrics()) is not None:
        metrics.reject(reason)


def count_shed(reason: str) -> None:
    if (metrics := _metrics()) is not None:
        metrics.shed_request(reason)


def _settings_now():
    return getattr(bentoml.get_current_service(), "settings", _settings)


def _max_body_bytes() -> int:
    """VIGIL_MAX_BODY_BYTES when set, else the limit derived from the model's schema."""
    explicit = _settings_now().max_body_bytes
    if explicit is not None:
        return explicit
    runtime = getattr(bentoml.get_current_service(), "runtime", None)
    return runtime.model.validator.body_limit if runtime is not None else BODY_FLOOR_BYTES


def _max_in_flight() -> int:
    return _settings_now().max_in_flight


def _api_key() -> str | None:
    key = _settings_now().api_key
    return key.get_secret_value() if key is not None else None


_FIELDS = body_fields()
# What BentoML parses after a precheck: its endpoint's argument is then unused.
_STAND_INS = {path: json.dumps({name: []}).encode() for path, name in _FIELDS.items()}


def precheck(path: str, body: bytes) -> bytes | None:
    """Parse and validate an API body before BentoML does (``JsonApi``); raises ``ApiError``.
    Returns the body BentoML gets instead: a stand-in whose parsing costs nothing, when BentoML
    would have accepted this one (parsing a 100-row body again cost as much as validating it).
    A service not ready leaves it to the endpoint (which answers 503)."""
    service = bentoml.get_current_service()
    runtime = getattr(service, "runtime", None)
    if runtime is None:
        return None
    data, by_pydantic = parse_json(body)
    name = _FIELDS[path]
    if not isinstance(data, dict):
        msg = f'expected a JSON object {{"{name}": [...]}}'
        raise ApiError(400, msg, [problem(["body"], msg)], reason="wrong_type")
    if name not in data:
        msg = "field required"
        raise ApiError(400, f"{name}: {msg}", [problem([name], msg)], reason="missing_field")
    if len(data) > 1:
        # A misspelt option must not be silently ignored.
        extra = [problem([key], "unknown field") for key in data if key != name]
        raise ApiError(400, summary(extra), extra, reason="unknown_field")
    sent = data[name]
    if path == PREDICT_PATH:
        validator = runtime.model.validator
        _prechecked.set((validator, validator.validate(sent), sent))
    else:
        bundle = runtime.bundle
        _prechecked.set((bundle, _feedback_pairs(runtime, bundle, sent), sent))
    # A body only json.loads accepts (a BOM, a lone surrogate) still goes to BentoML, which
    # refuses it as before.
    return _STAND_INS[path] if by_pydantic else None


def _feedback_pairs(runtime: WorkerState, bundle, sent: Any) -> list[tuple[str, Any]]:
    """``/feedback``'s labels checked by ``bundle``'s task (the endpoint and the precheck)."""
    return feedback_labels(
        sent, bundle.task, bundle.schema.classes, runtime.settings.max_batch_rows
    )


def _take_prechecked(by: Any, check: Callable[[Any], Any], argument: Any) -> Any:
    """The precheck's result if it was made by ``by``; else ``check`` of the field as the
    precheck parsed it (a rollout came between), or of BentoML's ``argument`` (no precheck)."""
    found = _prechecked.get()
    if found is None:
        return check(argument)
    _prechecked.set(None)
    made_by, result, sent = found
    return result if made_by is by else check(sent)


_documents: dict[str | None, dict[str, Any]] = {}  # model version -> its /docs.json


def openapi_document() -> dict[str, Any]:
    """``/docs.json``: BentoML's document, corrected for the model served now (see
    ``service.openapi``); one per model version (a rollout changes the features)."""
    runtime = getattr(bentoml.get_current_service(), "runtime", None)
    model = runtime.model if runtime is not None else None
    version = model.bundle.tag if model is not None else None
    if version not in _documents:
        settings = _settings_now()
        instance = classes = task = None
        if model is not None:
            validator = model.validator
            instance = instance_schema(
                validator.numeric,
                validator.categories,
                max_category_chars=validator.limits.max_category_chars,
                strict=validator.strict,
            )
            classes = list(model.bundle.schema.classes)
            task = model.bundle.task
        _documents.clear()
        document = published(
            VigilService.openapi_spec.asdict(),
            model_version=version,
            instance=instance,
            classes=classes,
            task=task,
            max_rows=settings.max_batch_rows,
            keyed=_api_key() is not None,
        )
        _documents[version] = add_protocol_paths(
            document,
            features=model.validator.names if model is not None else None,
            max_rows=settings.max_batch_rows,
            keyed=_api_key() is not None,
        )
    return _documents[version]


VigilService.mount_asgi_app(make_app(current_runtime, _api_key), path="/")
# First added runs first: the key is checked before anything else, then the worker's bound on
# requests in flight, then the body is read (bounded), parsed and checked. Each takes its paths
# from the routing table.
VigilService.add_asgi_middleware(
    BearerAuth, api_key=_api_key, paths=keyed_paths(), on_reject=count_rejection
)
VigilService.add_asgi_middleware(
    Admission, paths=admitted_paths(), max_in_flight=_max_in_flight, on_shed=count_shed
)
VigilService.add_asgi_middleware(
    JsonApi,
    paths=json_paths(),
    on_reject=count_rejection,
    max_body_bytes=_max_body_bytes,
    precheck=precheck,
)
VigilService.add_asgi_middleware(
    v2.OpenInference,
    current=current_runtime,
    ready=_is_ready,
    max_body_bytes=_max_body_bytes,
    on_reject=count_rejection,
    on_shed=count_shed,
)
VigilService.add_asgi_middleware(
    PublishedDocs, document=openapi_document, path=route_of(Plane.DOCS, "document").path
)
