"""Which runtime serves a model (``VIGIL_INFERENCE``), and the model call for each.

ONNX is served only from a verified artifact: the contract says the training check passed and
the file's sha256 matches. Serving ONNX never touches ``bundle.pipeline``: the pickle is not
loaded at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vigil.onnx_model import OnnxModel, top, verified_onnx
from vigil.registry import ModelBundle
from vigil.schema import columns_to_frame


class NotServable(RuntimeError):
    """VIGIL_INFERENCE=onnx and the model has no verified ONNX artifact; says why."""


class SklearnInference:
    runtime = "sklearn"

    def __init__(self, bundle: ModelBundle, reason: str | None = None):
        self.schema = bundle.schema
        self.pipeline = bundle.pipeline
        self.classes: list[Any] = self.pipeline.classes_.tolist()  # numpy ints -> Python ints
        self.reason = reason

    def predict_proba(
        self, columns: Mapping[str, Sequence[Any]], rows: int, numbers: np.ndarray | None = None
    ) -> np.ndarray:
        return self.pipeline.predict_proba(columns_to_frame(self.schema, columns, rows))

    @staticmethod
    def top(proba: np.ndarray) -> np.ndarray:
        return proba.argmax(axis=1)


class OnnxInference:
    runtime = "onnx"

    def __init__(self, bundle: ModelBundle, model: bytes, reason: str | None = None):
        self.model = OnnxModel(model, bundle.schema, bundle.contract["onnx"]["classes"])
        self.classes = self.model.classes
        self.reason = reason

    def predict_proba(
        self, columns: Mapping[str, Sequence[Any]], rows: int, numbers: np.ndarray | None = None
    ) -> np.ndarray:
        return self.model.predict_proba(columns, rows, numbers)

    @staticmethod
    def top(proba: np.ndarray) -> np.ndarray:
        return top(proba)


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
