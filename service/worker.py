"""What one worker serves with: the production model (its validator and micro-batcher), the
inference log and metrics, built together from the settings and closed together at shutdown.

The model part is a ``Model`` that a rollout (``service.follow``) replaces whole: a request
takes ``state.model`` once and is answered, logged and counted by that model even if a
newer one takes over meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from service.batcher import MicroBatcher
from service.canary import ActiveCandidate
from service.metrics import ServiceMetrics
from service.predictor import Answer, Job, Predictor
from service.served_model import Model
from service.shadow import ShadowWorker
from service.validation import InputLimits, InstanceValidator
from vigil.inference import OnnxInference, SklearnInference, load_inference
from vigil.log.inference_log import InferenceLog
from vigil.log.shadow import ShadowLog
from vigil.registry.store import ModelBundle, Registry
from vigil.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class WorkerState:
    settings: Settings
    log: InferenceLog | None
    metrics: ServiceMetrics | None
    model: Model
    # A shadow or canary this worker runs (service.canary), and the worker scoring answered
    # requests with the model that did not answer them (service.shadow).
    candidate: ActiveCandidate | None = None
    shadow: ShadowWorker | None = None
    _draining: set[asyncio.Task] = field(default_factory=set, repr=False)

    # The current model's parts, for callers that do not care about rollouts.
    @property
    def bundle(self) -> ModelBundle:
        return self.model.bundle

    @property
    def validator(self) -> InstanceValidator:
        return self.model.validator

    @property
    def batcher(self) -> MicroBatcher[Job, Answer]:
        return self.model.batcher

    @classmethod
    def start(
        cls,
        settings: Settings,
        registry: CollectorRegistry | None = None,
        on_load_failure: Callable[[str, BaseException], object] | None = None,
    ) -> WorkerState:
        """Load the production model (``NoProductionModel`` if none) and open the log
        (``InferenceLogError`` if unreachable); ``registry`` defaults to a fresh one.
        ``on_load_failure(tag, exc)`` hears of a production model that failed to load."""
        models = Registry(settings)
        tag = models.production_tag()
        if tag is None:
            models.load_production()  # NoProductionModel, with what to run
        # Load now, not on the first request; NotServable when VIGIL_INFERENCE cannot be met,
        # ModelSignatureError when VIGIL_REQUIRE_SIGNED_MODELS cannot.
        try:
            bundle = models.load(tag)
            inference = load_inference(bundle, settings.inference)
        except Exception as exc:
            if on_load_failure is not None:
                on_load_failure(tag, exc)
            raise
        log = metrics = None
        if settings.unsafe_disable_logging:
            logger.warning("VIGIL_UNSAFE_DISABLE_LOGGING: predictions are NOT logged")
        else:
            log = InferenceLog.from_settings(settings)
            try:
                log.create_schema()
            except Exception:
                log.close()
                raise
            # Under `bentoml serve` values live in the multiprocess files whatever the registry.
            metrics = ServiceMetrics(
                registry or CollectorRegistry(), bundle.tag, runtime=inference.runtime
            )
        runtime = cls(settings, log, metrics, None)  # type: ignore[arg-type]
        if log is not None:
            runtime.shadow = ShadowWorker(
                ShadowLog(log),
                metrics,
                max_queued_rows=settings.shadow_max_queued_rows,
                batch_rows=settings.shadow_batch_rows,
            )
        runtime.model = runtime.build(bundle, inference)
        logger.info(
            "serving %s with %s (%s; log: %s)",
            bundle.tag, inference.runtime, inference.reason, "off" if log is None else "on",
        )  # fmt: skip
        return runtime

    def build(
        self, bundle: ModelBundle, inference: SklearnInference | OnnxInference | None = None
    ) -> Model:
        """The serving path of ``bundle``; blocking (loads the model), so off the loop."""
        inference = inference or load_inference(bundle, self.settings.inference)
        if self.metrics is not None:
            self.metrics.value_buckets(bundle.tag, bundle.contract.get("prediction_buckets") or [])
        predictor = Predictor(bundle, self.log, self.metrics, inference)
        batcher = MicroBatcher(
            predictor,
            max_rows=self.settings.batch_max_rows,
            wait_ms=self.settings.batch_wait_ms,
            rows=lambda job: len(job.records),
            name="vigil-batch",
            max_queued_rows=self.settings.max_queued_rows,
            on_drop=lambda job: self.metrics and self.metrics.abandoned.inc(),
        )
        validator = InstanceValidator(
            bundle.schema,
            max_rows=self.settings.max_batch_rows,
            strict_categories=self.settings.strict_categories,
            limits=InputLimits.from_settings(self.settings),
        )
        return Model(bundle, validator, batcher, inference)

    def load(self, tag: str) -> Model:
        """Load a saved model and build its serving path (blocking: run it in a thread)."""
        return self.build(Registry(self.settings).load(tag))

    async def swap(self, model: Model) -> None:
        """Serve ``model`` from now on; return once the old model has answered and logged
        everything it had taken (requests already submitted to it are not moved)."""
        old, self.model = self.model, model
        if self.metrics is not None:
            self.metrics.serving(model.bundle.tag, model.inference.runtime)
        logger.info(
            "now serving %s with %s (was %s)",
            model.bundle.tag, model.inference.runtime, old.bundle.tag,
        )  # fmt: skip
        # A task of its own, awaited again by close(): a shutdown that cancels the reloader
        # mid-drain must not cancel the old batcher's loop with its requests.
        drain = asyncio.ensure_future(old.batcher.close())
        self._draining.add(drain)
        drain.add_done_callback(self._draining.discard)
        await asyncio.shield(drain)

    def route(
        self, request_id: str, model: Model, *, split: bool = True
    ) -> tuple[Model, Model | None]:
        """(the model that answers this request, the one that scores it afterwards). Without
        ``split`` (a request that names its version) ``model`` answers whatever the canary."""
        candidate = self.candidate
        if candidate is None or candidate.tag == model.bundle.tag:
            return model, None
        if not split:
            return model, candidate.model
        return candidate.route(request_id, model)

    def answered(self, job, other: Model | None) -> None:
        """Hand an answered request to the other model (never blocks; may skip it)."""
        if other is not None and self.shadow is not None:
            self.shadow.offer(other, job)

    async def set_candidate(self, candidate: ActiveCandidate | None) -> None:
        """Run ``candidate`` from now on (None: none); the one it replaces drains."""
        old, self.candidate = self.candidate, candidate
        if self.metrics is not None:
            self.metrics.running_candidate(
                candidate and candidate.tag, candidate and candidate.mode
            )
        logger.info(
            "candidate: %s",
            "none"
            if candidate is None
            else f"{candidate.mode} of {candidate.tag}"
            + (f" at {candidate.percent:g} %" if candidate.mode == "canary" else ""),
        )
        if old is not None and (candidate is None or old.model is not candidate.model):
            drain = asyncio.ensure_future(old.model.batcher.close())
            self._draining.add(drain)
            drain.add_done_callback(self._draining.discard)
            await asyncio.shield(drain)

    async def close(self) -> None:
        """Answer and log everything in flight, then release the store."""
        if self.shadow is not None:
            await asyncio.to_thread(self.shadow.close)
        if self.candidate is not None:
            await self.candidate.model.batcher.close()
        if self._draining:
            await asyncio.gather(*self._draining, return_exceptions=True)
        await self.model.batcher.close()
        if self.log is not None:
            self.log.close()
