"""Which runtime serves a model (``VIGIL_INFERENCE``), and the model call for each.

ONNX is served only from a verified artifact: the contract says the training check passed and
the file's sha256 matches. Serving ONNX never touches ``bundle.pipeline``: the pickle is not
loaded at all. Either runtime returns ``vigil.tasks.Outputs``: what the outputs are (classes
with probabilities, or numbers) is the model's task's business.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vigil.onnx_model import OnnxModel, verified_onnx
from vigil.registry.store import ModelBundle
from vigil.schema import columns_to_frame
from vigil.tasks import Outputs, task_for


class NotServable(RuntimeError):
    """VIGIL_INFERENCE=onnx and the model has no verified ONNX artifact; says why."""


class SklearnInference:
    runtime = "sklearn"

    def __init__(self, bundle: ModelBundle, reason: str | None = None):
        # Every call makes a pandas frame: load pandas with the model (off the event loop),
        # not in the first request's answer.
        importlib.import_module("pandas")
        self.schema = bundle.schema
        self.task = task_for(bundle.contract)
        self.pipeline = bundle.pipeline
        # numpy ints -> Python ints; a regressor has none
        self.classes: list[Any] = list(getattr(self.pipeline, "classes_", np.array([])).tolist())
        self.reason = reason

    def predict(
        self, columns: Mapping[str, Sequence[Any]], rows: int, numbers: np.ndarray | None = None
    ) -> Outputs:
        frame = columns_to_frame(self.schema, columns, rows)
        return self.task.outputs(self.task.raw(self.pipeline, frame), self.classes)


class OnnxInference:
    runtime = "onnx"

    def __init__(self, bundle: ModelBundle, model: bytes, reason: str | None = None):
        self.task = task_for(bundle.contract)
        self.model = OnnxModel(model, bundle.schema, bundle.contract["onnx"].get("classes") or [])
        self.classes = self.model.classes
        self.reason = reason

    def predict(
        self, columns: Mapping[str, Sequence[Any]], rows: int, numbers: np.ndarray | None = None
    ) -> Outputs:
        return self.task.outputs(self.model.predict_raw(columns, rows, numbers), self.classes)


def load_inference(bundle: ModelBundle, setting: str) -> SklearnInference | OnnxInference:
    """The model call for ``bundle`` under ``VIGIL_INFERENCE=setting`` (blocking: loads)."""
    if setting == "sklearn":
        return SklearnInference(bundle, "VIGIL_INFERENCE=sklearn")
    content, why = verified_onnx(bundle)
    if content is not None:
        return OnnxInference(bundle, content, why)
    if setting == "onnx":
        raise NotServable(f"VIGIL_INFERENCE=onnx but {bundle.tag} cannot be served by ONNX: {why}")
    return SklearnInference(bundle, why)
