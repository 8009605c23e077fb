"""Compile a fitted model to ONNX and prove it equal to scikit-learn before it is served.

The check runs the compiled model through the same feed the service uses
(``vigil.onnx_model``) on the held-out rows and the reference sample, and compares the outputs
as the model's task does (``Task.disagreement``): a classifier's predicted labels must be
identical and its probabilities within ``TOLERANCE``; a regressor's values within
``TOLERANCE`` relative to max(1, |value|). Any failure (no converter for a step, a runtime
error, a difference) keeps the model on scikit-learn, with the reason recorded.

Tolerance: onnxruntime runs trees and linear models in float32 and sums the trees' outputs in
float32, while scikit-learn works in float64; inputs are float32 in both for trees
(scikit-learn's trees cast them). Float32 carries about 7 significant digits (relative
rounding 6e-8 per operation), so a sum of a hundred trees is off by at most about 100 × 6e-8
≈ 6e-6 of its magnitude (measured: 4e-7 to 5e-7 on the bundled data sets, every estimator);
1e-5 is above that rounding and far below a difference that would change a decision or a
metric's sixth decimal place. Regressor values are compared relative to max(1, |y|) because
float32's error scales with the value (diabetes targets reach 346).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from vigil.onnx_model import ARTIFACT, OnnxModel
from vigil.schema import FeatureSchema
from vigil.tasks import CLASSIFIER, Outputs, Task
from vigil.text import one_line

TOLERANCE = 1e-5


@dataclass
class Export:
    runtime: str  # "onnx" or "sklearn"
    reason: str | None
    model: bytes | None = None
    check: dict[str, Any] = field(default_factory=dict)
    served: OnnxModel | None = None
    classes: list[Any] = field(default_factory=list)
    task: Task = CLASSIFIER

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

    def outputs(self, model, frame: pd.DataFrame) -> Outputs:
        """The outputs of the runtime that will serve (ONNX when verified)."""
        if self.served is not None:
            return self.task.outputs(self.served.predict_raw_frame(frame), self.classes)
        return self.task.outputs(self.task.raw(model, frame), self.classes)


def final_estimator(model) -> Any:
    return model.steps[-1][1] if hasattr(model, "steps") else model


def convert(model, schema: FeatureSchema, task: Task = CLASSIFIER) -> bytes:
    """The ONNX model of a fitted model (one input per feature); raises when it cannot."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    compiled = _with_column_inputs(copy.deepcopy(model), schema)
    inputs = [
        (f.name, FloatTensorType([None, 1]) if f.kind == "numeric" else StringTensorType([None, 1]))
        for f in schema.features
    ]
    with _hist_gradient_boosting_fix():
        onnx = to_onnx(
            compiled, initial_types=inputs, options=task.onnx_options(final_estimator(compiled))
        )
    return onnx.SerializeToString()


def _with_column_inputs(model, schema: FeatureSchema):
    """``model`` ready to take one input per feature: a pipeline that starts by selecting
    columns as is (minus ``training.pipeline``'s NaN-to-"" step: the feed already sends missing
    categories as "", and NaN cannot reach a string tensor); any other model behind a fitted
    passthrough of the features in schema order (not a refit: the model is untouched)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from training.pipeline import MISSING_AS_EMPTY

    first = model.steps[0][1] if isinstance(model, Pipeline) else None
    if isinstance(first, ColumnTransformer):
        for _, transformer, _ in getattr(first, "transformers_", []):
            steps = getattr(transformer, "steps", None)
            if steps and steps[0][0] == MISSING_AS_EMPTY:
                del steps[0]
        return model
    sample = pd.DataFrame({name: [0.0] for name in schema.names})
    columns = ColumnTransformer([("features", "passthrough", schema.names)]).fit(sample)
    return Pipeline([("columns", columns), ("model", model)])


@contextmanager
def _hist_gradient_boosting_fix() -> Iterator[None]:
    """skl2onnx 1.20 passes Python booleans for HistGradientBoosting's missing-value routing,
    which protobuf 7 refuses in an integer list ("Expected an int, got a boolean"): pass them
    as 0/1 while converting."""
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args, nodes_missing_value_tracks_true=0, **kwargs):
        return original(
            *args, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true), **kwargs
        )

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original


def export(
    model,
    schema: FeatureSchema,
    checks: dict[str, pd.DataFrame],
    *,
    task: Task = CLASSIFIER,
    tolerance: float = TOLERANCE,
) -> Export:
    """Convert and check on each named frame (``to_frame`` frames in schema order)."""
    from training.pipeline import classes_of

    classes = classes_of(model)
    try:
        content = convert(model, schema, task)
        compiled = OnnxModel(content, schema, classes)
    except Exception as exc:  # any converter or runtime failure: serve scikit-learn
        reason = f"ONNX conversion failed: {type(exc).__name__}: {one_line(exc)}"
        return Export("sklearn", reason, classes=classes, task=task)
    check: dict[str, Any] = {"tolerance": tolerance, "compared": task.name, "rows": {}}
    worst, mismatches = 0.0, 0
    try:
        for name, frame in checks.items():
            expected = task.outputs(task.raw(model, frame), classes)
            got = task.outputs(compiled.predict_raw_frame(frame), classes)
            diff, differ = task.disagreement(expected, got)
            worst, mismatches = max(worst, diff), mismatches + differ
            check["rows"][name] = len(frame)
    except Exception as exc:
        reason = f"ONNX check failed: {type(exc).__name__}: {one_line(exc)}"
        return Export("sklearn", reason, content, check, classes=classes, task=task)
    check.update(max_abs_diff=worst, label_mismatches=mismatches)
    check["passed"] = mismatches == 0 and worst <= tolerance
    if not check["passed"]:
        reason = (
            f"ONNX check failed: {mismatches} predictions differ, max |Δ| {worst:.3g} "
            f"(tolerance {tolerance:g})"
        )
        return Export("sklearn", reason, content, check, classes=classes, task=task)
    reason = (
        f"verified ONNX: predictions identical, max |Δ| {worst:.2g} on "
        f"{sum(check['rows'].values())} rows"
    )
    return Export("onnx", reason, content, check, compiled, classes, task)
