"""A model's quality estimate: fitted at training on the holdout, applied per window.

The task names its estimator (``Task.quality_estimator``); ``ESTIMATORS`` maps names to the
estimators of this package. ``fit_quality_estimators`` gives what training stores: JSON for
the contract (the state names its estimator, so a model keeps the one it was fitted with) and
the estimator's artifact. ``QualityEstimator`` is what the monitor loads and applies.

Standard errors: the spread of the estimate minus the realized metric over holdout chunks of
the window's size (how far the estimate strays from a window's true value by sampling alone),
in quadrature with the estimator's own per-window uncertainty (its calibration's, and for the
shift-aware estimators a term that grows with the window's distance from the reference).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from vigil.estimate.atc import AverageThresholdedConfidence
from vigil.estimate.base import Estimate, Estimator
from vigil.estimate.cbpe import ConfidenceBased
from vigil.estimate.dle import DirectLoss
from vigil.estimate.doc import DifferenceOfConfidences
from vigil.estimate.metrics import error_spread, spread
from vigil.estimate.reweighted import ReweightedConfidence, ReweightedLoss, ReweightedThresholded
from vigil.estimate.shift_aware import LossShiftAware, ThresholdedShiftAware
from vigil.tasks import Outputs, Task

CONTRACT_KEY = "quality_estimator"
# Rows of the holdout chunks the sampling part of the standard error is measured on (a
# check's first call pays for the draws, so they stay small; the spread scales as 1/√rows).
SE_ROWS = 200
ARTIFACT = "quality_estimator.joblib"

ESTIMATORS: dict[str, Estimator] = {
    e.name: e
    for e in (
        ConfidenceBased(),
        AverageThresholdedConfidence(),
        DifferenceOfConfidences(),
        ReweightedConfidence(),
        ReweightedThresholded(),
        ThresholdedShiftAware(),
        DirectLoss(),
        ReweightedLoss(),
        LossShiftAware(),
    )
}


def estimator_named(name: str) -> Estimator:
    try:
        return ESTIMATORS[name]
    except KeyError:
        known = sorted(ESTIMATORS)
        raise ValueError(f"unknown quality estimator {name!r}; known: {known}") from None


def estimator_for(task: Task) -> Estimator:
    return estimator_named(task.quality_estimator)


def fit_quality_estimators(
    task: Task,
    model_or_outputs: Any,
    holdout_features: pd.DataFrame,
    holdout_labels: pd.Series,
    seed: int,
    classes=None,
    method: str | None = None,
) -> dict[str, Any]:
    """Fit the task's estimator (or the one named ``method``) on the holdout.

    ``model_or_outputs``: a fitted scikit-learn model (``predict_proba`` / ``predict`` is
    called on ``holdout_features``), its ``vigil.tasks.Outputs`` on them (as the served runtime
    gave them), or its raw output (probabilities in class order, or predicted numbers).
    ``classes``: the probability columns' classes (default: the model's ``classes_``).
    Returns ``{"contract": {CONTRACT_KEY: …}, "artifacts": {name: bytes}}``: merge the first
    into the contract, the second into the saved artifacts.
    """
    estimator = estimator_named(method) if method else estimator_for(task)
    if isinstance(model_or_outputs, Outputs):
        raw = estimator.raw_of(model_or_outputs)
    elif hasattr(model_or_outputs, "predict"):
        raw = task.raw(model_or_outputs, holdout_features)
        classes = list(getattr(model_or_outputs, "classes_", classes or ()))
    else:
        raw = np.asarray(model_or_outputs)
    truth = estimator.truth(holdout_labels, classes)
    state, blob = estimator.fit(raw, holdout_features, truth, seed)
    state["holdout_rows"] = len(holdout_labels)
    return {"contract": {CONTRACT_KEY: state}, "artifacts": {ARTIFACT: blob} if blob else {}}


class QualityEstimator:
    """A saved model's estimator: ``estimate(rows, n)`` gives ``{metric: value, metric_se:
    …}`` for a window; ``assess`` adds what it can vouch for; ``of`` is None for models
    saved without one."""

    def __init__(self, task: Task, state: Mapping[str, Any], model: Any = None):
        self.task, self.state, self.model = task, state, model
        self.method = estimator_named(state.get("method") or task.quality_estimator)
        self._se: dict[str, float | None] | None = None

    @classmethod
    def of(cls, bundle) -> QualityEstimator | None:
        state = bundle.contract.get(CONTRACT_KEY)
        if not state:
            return None
        model = None
        if ARTIFACT in bundle.artifacts:
            import joblib

            model = joblib.load(io.BytesIO(bundle.artifact_bytes(ARTIFACT)))
        loaded = cls(bundle.task, state, model)
        loaded.prepare()
        return loaded

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.method.metrics

    def standard_errors(self, n: int) -> dict[str, float | None]:
        """The sampling part of the standard error at window size ``n``: measured once over
        holdout chunks of ``SE_ROWS`` rows (``prepare``), scaled by √(SE_ROWS / n) as a mean's
        standard error is, so no check pays for the draws."""
        base = self.prepare()
        factor = float(np.sqrt(SE_ROWS / max(int(n), 1)))
        return {m: None if v is None else v * factor for m, v in base.items()}

    def prepare(self) -> dict[str, float | None]:
        """The sampling part at ``SE_ROWS`` rows (computed on first use; ``of`` does it at
        load time)."""
        if self._se is None:
            realized, estimated = self.method.draws(self.state, SE_ROWS, seed=SE_ROWS)
            if estimated:
                self._se = error_spread(realized, estimated, self.metrics)
            else:
                self._se = spread(realized, self.metrics)
        return self._se

    def rows_from_log(self, frame: pd.DataFrame, features: pd.DataFrame, classes) -> dict:
        """What ``estimate`` takes, from logged rows (``frame``) and their model input."""
        return self.method.rows_from_log(frame, features, classes)

    def assess(
        self, rows: Mapping[str, Any], n: int
    ) -> tuple[dict[str, float | None], dict[str, Any] | None]:
        """``({metric: value, metric_se: …}, support)``: support says whether the window lies
        inside what the reference can vouch for (None when the estimator cannot tell)."""
        found: Estimate = self.method.estimate(self.state, self.model, rows)
        se = self.standard_errors(n)
        out: dict[str, float | None] = {}
        for m in self.metrics:
            value = found.values[m]
            total = None if se[m] is None else float(np.hypot(se[m], found.extra_se.get(m, 0)))
            out[m] = None if value is None else round(value, 6)
            out[m + "_se"] = None if total is None else round(total, 6)
        return out, found.support

    def estimate(self, rows: Mapping[str, Any], n: int) -> dict[str, float | None]:
        return self.assess(rows, n)[0]


def estimated_drop(
    task: Task,
    metric: str,
    estimate: float | None,
    se: float | None,
    reference: float | None,
    margin: float,
    relative_margin: float,
) -> bool:
    """``ModelQualityDropEstimated``'s condition (the rule computes the same): the estimate
    is worse than the held-out reference by more than the margin (absolute for metrics where
    higher is better, relative for errors) and by more than 3 standard errors."""
    if estimate is None or se is None or reference is None:
        return False
    if task.higher_is_better[metric]:
        return estimate < reference - margin and estimate < reference - 3 * se
    return estimate > reference * (1 + relative_margin) and estimate > reference + 3 * se
