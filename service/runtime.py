"""What one worker serves with: the production model, its validator, the inference log, metrics
and the micro-batcher, built together from the settings and closed together at shutdown."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from service.batcher import MicroBatcher
from service.metrics import ServiceMetrics
from service.predictor import Answer, Job, Predictor
from service.validation import InstanceValidator
from vigil.inference_log import InferenceLog
from vigil.registry import ModelBundle, Registry
from vigil.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    bundle: ModelBundle
    log: InferenceLog | None
    metrics: ServiceMetrics | None
    validator: InstanceValidator
    batcher: MicroBatcher[Job, Answer]

    @classmethod
    def start(cls, settings: Settings, registry: CollectorRegistry | None = None) -> Runtime:
        """Load the production model (``NoProductionModel`` if none) and open the log
        (``InferenceLogError`` if unreachable); ``registry`` defaults to a fresh one."""
        bundle = Registry(settings).load_production()
        _ = bundle.pipeline  # load now, not on the first request
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
            metrics = ServiceMetrics(registry or CollectorRegistry(), bundle.tag)
        predictor = Predictor(bundle, log, metrics)
        batcher = MicroBatcher(
            predictor,
            max_rows=settings.batch_max_rows,
            wait_ms=settings.batch_wait_ms,
            rows=lambda job: len(job.records),
            name="vigil-batch",
        )
        validator = InstanceValidator(
            bundle.schema,
            max_rows=settings.max_batch_rows,
            strict_categories=settings.strict_categories,
        )
        logger.info("serving %s (log: %s)", bundle.tag, "off" if log is None else "on")
        return cls(settings, bundle, log, metrics, validator, batcher)

    async def close(self) -> None:
        """Answer and log everything in flight, then release the store."""
        await self.batcher.close()
        if self.log is not None:
            self.log.close()
