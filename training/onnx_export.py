"""Compile a fitted pipeline to ONNX and prove it equal to scikit-learn before it is served.

The check runs the compiled model through the same feed the service uses
(``vigil.onnx_model``) on the held-out rows and the reference sample: predicted labels must be
identical and probabilities within ``TOLERANCE``. Any failure (no converter for a step, a
runtime error, a difference) keeps the model on scikit-learn, with the reason recorded.

Tolerance: onnxruntime runs the trees in float32 and sums the trees' votes in float32, while
scikit-learn averages in float64; inputs are float32 in both (scikit-learn's trees cast them).
Float32 carries about 7 significant digits, so an average of a few hundred votes in [0, 1] is
off by a few 1e-7 (6.6e-7 measured on the default forest); 1e-5 is well above that rounding and
far below any difference that would change a decision or a metric's sixth decimal place.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vigil.onnx_model import ARTIFACT, OnnxModel
from vigil.schema import FeatureSchema
from vigil.task import top_class as top

TOLERANCE = 1e-5


@dataclass
class Export:
    runtime: str  # "onnx" or "sklearn"
    reason: str | None
    model: bytes | None = None
    check: dict[str, Any] = field(default_factory=dict)
    served: OnnxModel | None = None
    classes: list[Any] = field(default_factory=list)

    def contract(self) -> dict[str, Any]:
        onnx = None
        if self.model is not None:
            onnx = {
                "artifact": ARTIFACT,
                "sha256": hashlib.sha256(self.model).hexdigest(),
                "classes": self.classes,
                "check": self.check,
            }
        elif self.check:
            onnx = {"check": self.check}
        return {"inference": {"runtime": self.runtime, "reason": self.reason}, "onnx": onnx}

    def artifacts(self) -> dict[str, bytes]:
        # Only a verified model is saved: the service serves whatever artifact it finds.
        return {ARTIFACT: self.model} if self.runtime == "onnx" and self.model else {}

    def predict(self, pipeline, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and predicted class indices of the runtime that will serve."""
        if self.served is not None:
            # Float32 sums can land an ULP above 1; scikit-learn's metrics refuse that.
            proba = np.clip(self.served.predict_raw_frame(frame), 0.0, 1.0)
            return proba, top(proba)
        proba = pipeline.predict_proba(frame)
        return proba, proba.argmax(axis=1)


def convert(pipeline, schema: FeatureSchema) -> bytes:
    """The ONNX model of a fitted ``training.model`` pipeline; raises when it cannot."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.ensemble import RandomForestClassifier

    from training.model import MISSING_AS_EMPTY

    compiled = copy.deepcopy(pipeline)
    prepare = compiled.steps[0][1]
    for _, transformer, _ in getattr(prepare, "transformers_", []):
        steps = getattr(transformer, "steps", None)
        # The feed already sends missing categories as "": NaN cannot reach a string tensor.
        if steps and steps[0][0] == MISSING_AS_EMPTY:
            del steps[0]
    inputs = [
        (f.name, FloatTensorType([None, 1]) if f.kind == "numeric" else StringTensorType([None, 1]))
        for f in schema.features
    ]
    model = to_onnx(
        compiled,
        initial_types=inputs,
        options={RandomForestClassifier: {"zipmap": False}},
    )
    return model.SerializeToString()


def export(
    pipeline,
    schema: FeatureSchema,
    checks: dict[str, pd.DataFrame],
    *,
    tolerance: float = TOLERANCE,
) -> Export:
    """Convert and check on each named frame (``to_frame`` frames in schema order)."""
    classes = pipeline.classes_.tolist()
    try:
        model = convert(pipeline, schema)
        compiled = OnnxModel(model, schema, classes)
    except Exception as exc:  # any converter or runtime failure: serve scikit-learn
        reason = f"ONNX conversion failed: {type(exc).__name__}: {_one_line(exc)}"
        return Export("sklearn", reason, classes=classes)
    check: dict[str, Any] = {"tolerance": tolerance, "rows": {}}
    worst, mismatches = 0.0, 0
    try:
        for name, frame in checks.items():
            expected = pipeline.predict_proba(frame)
            got = np.clip(compiled.predict_raw_frame(frame), 0.0, 1.0)
            worst = max(worst, float(np.abs(expected - got).max(initial=0.0)))
            mismatches += int((expected.argmax(axis=1) != top(got)).sum())
            check["rows"][name] = len(frame)
    except Exception as exc:
        reason = f"ONNX check failed: {type(exc).__name__}: {_one_line(exc)}"
        return Export("sklearn", reason, model, check, classes=classes)
    check.update(max_abs_proba_diff=worst, label_mismatches=mismatches)
    check["passed"] = mismatches == 0 and worst <= tolerance
    if not check["passed"]:
        reason = (
            f"ONNX check failed: {mismatches} labels differ, max |Δp| {worst:.3g} "
            f"(tolerance {tolerance:g})"
        )
        return Export("sklearn", reason, model, check, classes=classes)
    reason = (
        f"verified ONNX: labels identical, max |Δp| {worst:.2g} on "
        f"{sum(check['rows'].values())} rows"
    )
    return Export("onnx", reason, model, check, compiled, classes)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:300]
