"""A model compiled to ONNX, run by onnxruntime: its session, its input feed and its labels.

Shared by training (which checks the conversion against scikit-learn) and the service (which
serves it), so both go through the same feed. Inputs are one ``[None, 1]`` tensor per feature
in schema order: float32 for numeric features (missing as NaN), strings for categorical ones
(missing as ``""``, which the pipeline's own imputer treats as missing too). The output read is
the model's last: a classifier's probabilities (converted without a ZipMap), a regressor's
predicted values; ``vigil.tasks`` turns either into answers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vigil.schema import FeatureSchema

ARTIFACT = "model.onnx"


class OnnxModel:
    def __init__(self, model: bytes, schema: FeatureSchema, classes: Sequence[Any]):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One thread each: a worker shares two cores with the other workers and the event loop.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.schema = schema
        self.classes = list(classes)
        inputs = self.session.get_inputs()
        if len(inputs) != len(schema.features):
            raise ValueError(f"ONNX model has {len(inputs)} inputs, schema {len(schema.features)}")
        self._inputs = [
            (i.name, f.name, f.kind == "numeric")
            for i, f in zip(inputs, schema.features, strict=True)
        ]
        self._output = [self.session.get_outputs()[-1].name]

    def feed(
        self, columns: Mapping[str, Sequence[Any]], rows: int, numbers: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Arrays straight from validated values (numbers, strings, None): no pandas.
        ``numbers``, when given, holds the numeric features already (a row per feature in
        ``schema.numeric`` order, NaN for missing, as ``service.validation`` makes them)."""
        out = {}
        absent = [None] * rows
        # float64 to float32 in one cast: the same values as converting each number.
        numeric_rows = iter(numbers.astype(np.float32)) if numbers is not None else None
        for onnx_name, name, numeric in self._inputs:
            if numeric and numeric_rows is not None:
                array = next(numeric_rows)
            elif numeric:
                array = np.array(columns.get(name, absent), dtype=np.float32)  # None: NaN
            else:
                values = columns.get(name, absent)
                array = np.array([v if type(v) is str else "" for v in values], dtype=object)
            out[onnx_name] = array.reshape(-1, 1)
        return out

    def predict_raw(
        self, columns: Mapping[str, Sequence[Any]], rows: int, numbers: np.ndarray | None = None
    ) -> np.ndarray:
        """Probabilities ``[n, classes]`` or values ``[n]``, as float64."""
        (raw,) = self.session.run(self._output, self.feed(columns, rows, numbers))
        return raw.astype(np.float64)

    def predict_raw_frame(self, frame) -> np.ndarray:
        """For training's check: a ``vigil.schema.to_frame`` frame (NaN for missing)."""
        columns = {
            f.name: [None if isinstance(v, float) and math.isnan(v) else v for v in frame[f.name]]
            for f in self.schema.features
        }
        return self.predict_raw(columns, len(frame))


def verified_onnx(bundle) -> tuple[bytes | None, str]:
    """A ``ModelBundle``'s ONNX bytes when verified (the training check passed and the file
    matches its recorded sha256), else None; and why."""
    inference = bundle.contract.get("inference") or {}
    onnx = bundle.contract.get("onnx") or {}
    if inference.get("runtime") != "onnx":
        return None, inference.get("reason") or "the model has no ONNX artifact"
    try:
        content = bundle.artifact_bytes(ARTIFACT)
    except KeyError:
        return None, f"{ARTIFACT} is missing from the model store"
    if hashlib.sha256(content).hexdigest() != onnx.get("sha256"):
        return None, f"{ARTIFACT} does not match the sha256 recorded at training"
    return content, inference.get("reason") or "verified ONNX artifact"
