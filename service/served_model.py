"""One model version's serving path: its bundle, validator, micro-batcher and inference
engine (scikit-learn or ONNX). A rollout replaces it whole (``service.worker``)."""

from __future__ import annotations

from dataclasses import dataclass

from service.batcher import MicroBatcher
from service.predictor import Answer, Job
from service.validation import InstanceValidator
from vigil.inference import OnnxInference, SklearnInference
from vigil.registry.store import ModelBundle


@dataclass(frozen=True)
class Model:
    """One model version's serving path."""

    bundle: ModelBundle
    validator: InstanceValidator
    batcher: MicroBatcher[Job, Answer]
    inference: SklearnInference | OnnxInference

    def inference_card(self) -> dict[str, str | None]:
        return {"runtime": self.inference.runtime, "reason": self.inference.reason}
