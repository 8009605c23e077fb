"""The gate and the promotion policy, apart from the commands that use them
(``training.train``, ``training.register``, ``training.retrain``).

- ``Gate``: the least held-out figure a model needs, per task, beside beating the naive
  predictor (``Task.gate``).
- ``decide``: export a fitted model to ONNX (checked), score it with the runtime that will
  serve it, save it with its contract, and promote it when asked, when it passes the gate and
  when it is not worse than production on the same held-out rows.
- ``promote_if_unchanged``: promote only if production is still the model the decision was
  made against (compare and set); otherwise an ``Outcome`` with ``conflict``.
"""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.tasks import CLASSIFICATION, CLASSIFIER, REGRESSION, Outputs, Task


@dataclass
class Outcome:
    model_tag: str
    metrics: dict[str, float]
    promoted: bool
    reason: str | None
    gate_passed: bool
    task: str = CLASSIFICATION
    # Production changed between reading it and promoting (``ProductionChanged``): exit 3.
    conflict: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model_tag": self.model_tag,
            "task": self.task,
            "metrics": self.metrics,
            "promoted": self.promoted,
        }
        if not self.promoted:
            out["reason"] = self.reason
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


@dataclass(frozen=True)
class Gate:
    """The least held-out figure a model needs, per task: accuracy for classifiers, R² for
    regressors (``Task.gate`` also asks it to beat the naive predictor)."""

    min_accuracy: float = 0.6
    min_r2: float = 0.1
    minimum: dict[str, float] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        by_task = {CLASSIFICATION: self.min_accuracy, REGRESSION: self.min_r2}
        object.__setattr__(self, "minimum", by_task)

    def check(self, task: Task, metrics: dict[str, Any], naive: dict[str, float]) -> str | None:
        """None when the model passes; otherwise why not."""
        return task.gate(metrics, naive, self.minimum[task.name])


DEFAULT_GATE = Gate()


def decide(
    settings,
    task: Task,
    schema,
    model,
    reference: tuple,
    holdout: tuple,
    *,
    naive: dict[str, float],
    promote: bool,
    gate: Gate,
    contract: dict[str, Any],
    artifacts: dict[str, bytes] | None = None,
) -> Outcome:
    """Export ``model`` to ONNX (checked), score it on ``holdout`` with the runtime that will
    serve it, save it with the contract and the ``reference`` sample, and promote it when
    asked, when it passes the gate and when it is not worse than production on ``holdout``.
    ``artifacts``: further files to store (``training.register``: the model as skops)."""
    from training.onnx_export import export
    from vigil.estimate import fit_quality_estimators
    from vigil.registry.store import LABEL_COLUMN, NO_PRODUCTION, PREDICTION_COLUMN, Registry

    ref_x, ref_y = reference
    x_test, y_test = holdout
    features = ref_x[schema.names]
    # Compiled and checked here; metrics and reference predictions are the served runtime's.
    exported = export(model, schema, {"holdout": x_test, "reference": features}, task=task)
    classes = exported.classes
    held_out = exported.outputs(model, x_test)
    metrics = task.score(y_test.to_numpy(), held_out, classes)
    seed = (contract.get("params") or {}).get("seed", 0)
    estimators = fit_quality_estimators(task, held_out, x_test, y_test, seed, classes=classes)
    stored = task.reference_predictions(exported.outputs(model, features))
    sample = features.copy()
    sample[LABEL_COLUMN] = task.reference_predictions(Outputs(list(ref_y)))
    sample[PREDICTION_COLUMN] = stored

    contract = {
        "task": task.name,
        "schema": schema.to_dict(),
        "metrics": metrics,
        "naive": naive,
        "prediction_buckets": task.prediction_buckets(stored),
        "versions": _versions(),
        "git_commit": _git_commit(),
        "lineage": {},
        **exported.contract(),
        **estimators["contract"],
        **contract,
    }
    registry = Registry(settings)
    files = {**(artifacts or {}), **exported.artifacts(), **estimators["artifacts"]}
    sample = sample.reset_index(drop=True)
    tag = registry.save(model, contract, sample, artifacts=files)

    def outcome(promoted: bool, reason: str | None, passed: bool = True) -> Outcome:
        return Outcome(tag, metrics, promoted, reason, passed, task.name)

    failed = gate.check(task, metrics, naive)
    if failed:
        return outcome(False, f"quality gate: {failed}", passed=False)
    if not promote:
        return outcome(False, "not asked to promote (--promote)")
    expect = registry.production_tag() or NO_PRODUCTION  # what the comparison is against
    worse = _worse_than_production(registry, task, schema, metrics, x_test, y_test)
    if worse:
        return outcome(False, worse)
    return promote_if_unchanged(registry, tag, metrics, expect, task)


def promote_if_unchanged(
    registry, tag: str, metrics: dict, expect: str, task: Task = CLASSIFIER
) -> Outcome:
    """Promote ``tag`` if production is still ``expect``, the model it was compared with; an
    outcome with ``conflict`` (naming who changed production) otherwise."""
    from vigil.registry.store import ProductionChanged

    try:
        registry.promote(tag, expect=expect)
    except ProductionChanged as exc:
        return Outcome(tag, metrics, False, str(exc), True, task.name, conflict=True)
    return Outcome(tag, metrics, True, None, True, task.name)


def _worse_than_production(registry, task, schema, metrics, x_test, y_test) -> str | None:
    """Compare with the production model on the same held-out rows; None when not worse."""
    from vigil.registry.store import NoProductionModel

    try:
        current = registry.load_production()
    except NoProductionModel:
        return None
    if current.schema.names != schema.names or current.task is not task:
        return None  # a different data set or task: nothing to compare on
    worse = task.worse(metrics, score_served(current, x_test, y_test))
    return f"not better than production {current.tag}: {worse}" if worse else None


def score_served(bundle, x_test, y_test) -> dict[str, float | None]:
    """The held-out metrics of what serves ``bundle``: its verified ONNX model, if any."""
    from training.pipeline import classes_of
    from vigil.onnx_model import OnnxModel, verified_onnx

    task = bundle.task
    content, _ = verified_onnx(bundle)
    if content is None:
        classes = classes_of(bundle.pipeline)
        outputs = task.outputs(task.raw(bundle.pipeline, x_test), classes)
    else:
        classes = bundle.contract["onnx"]["classes"]
        raw = OnnxModel(content, bundle.schema, classes).predict_raw_frame(x_test)
        outputs = task.outputs(raw, classes)
    return task.score(y_test.to_numpy(), outputs, classes)


def _versions() -> dict[str, str]:
    import bentoml
    import numpy
    import pandas
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
        "bentoml": bentoml.__version__,
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
