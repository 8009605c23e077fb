"""What differs between a classifier and a regressor, in one place.

A model's ``task`` (``classification`` or ``regression``) is recorded in its contract. Training,
the service and the monitor never branch on it: they ask the ``Task`` object for

- the model's outputs and the answer's shape (``outputs``, ``answer``, ``log_outputs``);
- the held-out and live metrics and which direction is better (``score``, ``score_logged``,
  ``metrics``, ``higher_is_better``);
- the quality gate against a naive predictor and the promotion comparison (``naive``,
  ``gate``, ``worse``);
- the label check for ``/feedback`` (``check_label``) and the labels' normal form;
- the prediction-drift test (``prediction_drift_method``, ``prediction_values``);
- what a metrics sink counts per prediction (``count``).

``task_for(contract)`` gives the task of a saved model (models saved before tasks existed are
classifiers); ``infer_task(labels)`` decides one from a target column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)
MAX_CLASSES = 50
# A numeric target with more distinct values than this (and not all integers few enough to be
# classes) is a regression target under --task auto.
_AUTO_MAX_CLASSES = 20


class BadLabel(ValueError):
    """A label this model cannot take; the message says why (no value echoed beyond 40 chars)."""


@dataclass(frozen=True)
class Outputs:
    """A model's answer for ``n`` rows. ``predictions``: class labels or numbers, as Python
    values; ``proba``: ``[n, classes]`` in class order (classifiers only); ``top``: the index
    of each row's predicted class (classifiers only)."""

    predictions: list[Any]
    proba: np.ndarray | None = None
    top: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.predictions)

    @cached_property
    def rounded(self) -> np.ndarray | None:
        """``proba`` to six places, as answered and logged: rounded once per batch."""
        return None if self.proba is None else self.proba.round(6)


class PredictionSink(Protocol):
    """What the service's metrics take (``service.metrics.ServiceMetrics``)."""

    def classes_predicted(
        self, classes: Sequence[str], top: np.ndarray, confidence: np.ndarray, version: str
    ) -> None: ...

    def values_predicted(self, values: Sequence[float], version: str) -> None: ...


class Task:
    name: str
    metrics: tuple[str, ...]
    higher_is_better: Mapping[str, bool]
    compared: tuple[str, ...]  # the promotion rule compares these with production's
    quality_metric: str  # the one ModelQualityDrop watches
    prediction_drift_method: str  # "chisquare" (labels) or "ks" (numbers)
    # The estimator (``vigil.estimate``, by registered name) that estimates its quality
    # before labels arrive.
    quality_estimator: str

    def classes(self, labels: pd.Series) -> tuple[Any, ...]:
        """The model's classes as the schema records them (none for a regressor)."""
        raise NotImplementedError

    def raw(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        """A scikit-learn model's raw output: probabilities or predicted numbers."""
        raise NotImplementedError

    def onnx_options(self, estimator: Any) -> dict[Any, Any]:
        """skl2onnx options for the final estimator (a probability tensor, not a ZipMap)."""
        return {}

    def outputs(self, raw: np.ndarray, classes: Sequence[Any]) -> Outputs:
        """The outputs of a raw model output (scikit-learn's or ONNX's)."""
        raise NotImplementedError

    def answer(self, outputs: Outputs, rows: slice, keys: Sequence[str]) -> dict[str, Any]:
        """The answer's task-specific keys for ``rows`` (``predictions``, ``probabilities``)."""
        raise NotImplementedError

    def log_outputs(
        self, outputs: Outputs, keys: Sequence[str]
    ) -> tuple[list[Any], dict[str, list[float]]]:
        """What the log stores: predictions, and probabilities by class (``{}`` for none)."""
        raise NotImplementedError

    def count(self, sink: PredictionSink, outputs: Outputs, keys: Sequence[str], version: str):
        raise NotImplementedError

    def score(
        self, truth: np.ndarray, outputs: Outputs, classes: Sequence[Any]
    ) -> dict[str, float | None]:
        raise NotImplementedError

    def score_logged(self, frame: pd.DataFrame, classes: Sequence[Any]) -> dict[str, Any]:
        """Quality of logged predictions joined to labels (``label``, ``prediction``,
        ``probabilities`` columns, as ``InferenceLog.labeled`` reads them)."""
        raise NotImplementedError

    def naive(self, train_labels: pd.Series, test_labels: pd.Series) -> dict[str, float]:
        """The naive predictor's held-out figures the gate must beat."""
        raise NotImplementedError

    def gate(self, metrics: Mapping[str, Any], naive: Mapping[str, float], minimum: float):
        """None when ``metrics`` pass; otherwise why not. ``minimum``: least accuracy or R²."""
        raise NotImplementedError

    def worse(self, mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> str | None:
        """Why ``mine`` is worse than ``theirs`` on the same rows, or None."""
        for name in self.compared:
            a, b = mine.get(name), theirs.get(name)
            if a is None or b is None:
                continue
            if (a < b) if self.higher_is_better[name] else (a > b):
                sign = "<" if self.higher_is_better[name] else ">"
                return f"held-out {name} {a:.4f} {sign} {b:.4f}"
        return None

    def check_label(self, value: Any, classes: Sequence[Any]) -> Any:
        """The label as stored; ``BadLabel`` when the model cannot take it."""
        raise NotImplementedError

    def normalise_labels(self, labels: pd.Series) -> pd.Series:
        raise NotImplementedError

    def reference_label(self, value: Any, classes: Sequence[Any]) -> Any:
        """A label of the reference sample (stored as text for classes) as ``/feedback``
        takes it."""
        raise NotImplementedError

    def wrong_label(self, label: Any, classes: Sequence[Any], spread: float) -> Any:
        """A label the model would be wrong on: another class, or the value moved by
        ``spread`` (demo traffic that shows ModelQualityDrop)."""
        raise NotImplementedError

    def label_schema(self, classes: Sequence[Any]) -> dict[str, Any]:
        """JSON Schema of one ``/feedback`` label."""
        raise NotImplementedError

    def answer_schema(self, classes: Sequence[Any]) -> dict[str, dict[str, Any]]:
        """JSON Schema of the answer's task-specific keys (``answer``)."""
        raise NotImplementedError

    def prediction_values(self, values: pd.Series) -> pd.Series:
        """Predictions (logged or from the reference) in the form their drift test takes."""
        raise NotImplementedError

    def label_values(self, values: pd.Series) -> pd.Series:
        """Labels (logged or from the reference) in the form their drift test takes."""
        return self.prediction_values(values)

    def reference_predictions(self, outputs: Outputs) -> list[Any]:
        """Predictions as stored in the reference sample's prediction column."""
        raise NotImplementedError

    def protocol_outputs(
        self, fields: Mapping[str, Any], classes: Sequence[Any]
    ) -> list[tuple[str, str, Any, dict[str, Any]]]:
        """The Open Inference Protocol's outputs (``service.v2``) of an answer's ``fields``:
        ``(name, datatype, values, parameters)``, values a numpy array or a list of str."""
        raise NotImplementedError

    def prediction_buckets(self, reference_predictions: Sequence[Any]) -> list[float]:
        """Bucket bounds of ``vigil_prediction_value`` (none: the task has no such histogram)."""
        return []

    def target_problem(self, labels: pd.Series) -> str | None:
        """Why a training target cannot be learned as this task, or None."""
        raise NotImplementedError

    def stratify(self, labels: pd.Series) -> pd.Series | None:
        """What a train/test split stratifies on (classes with two rows or more), or None."""
        return None

    def estimator(self, kind: str, *, seed: int, n_estimators: int) -> Any:
        """The unfitted scikit-learn estimator ``training.train --estimator kind`` fits."""
        raise NotImplementedError

    def disagreement(self, expected: Outputs, got: Outputs) -> tuple[float, int]:
        """How far ``got`` (ONNX) is from ``expected`` (scikit-learn) on the same rows: the
        largest difference, and how many predictions differ outright."""
        raise NotImplementedError

    # -- a candidate against production, on the same rows (monitoring.candidate) ------------

    agreement_kind: str  # what ``agreement`` measures, for the check's JSON

    def agreement(self, production: Sequence[Any], candidate: Sequence[Any]) -> float:
        """How alike two models' predictions of the same rows are."""
        raise NotImplementedError

    def paired_test(
        self, labels: Sequence[Any], production: Sequence[Any], candidate: Sequence[Any]
    ) -> tuple[str, float, int]:
        """(method, two-sided p-value, direction: 1 the candidate is better, -1 worse, 0 tie)
        of the two models' difference on the same labeled rows."""
        raise NotImplementedError


def infer_task(labels: pd.Series) -> str:
    """``--task auto``: text, booleans and few distinct integers are classes; other numbers
    (any fraction, or more distinct integers than ``_AUTO_MAX_CLASSES``) are a regression."""
    import pandas as pd

    values = labels.dropna()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return CLASSIFICATION
    numbers = values.to_numpy(dtype=float)
    integral = bool(np.all(np.mod(numbers, 1) == 0))
    if integral and values.nunique() <= _AUTO_MAX_CLASSES:
        return CLASSIFICATION
    return REGRESSION
