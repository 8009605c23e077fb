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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np
import pandas as pd

from vigil.tasks.labels import label_sort_key, plain_label

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)
MAX_CLASSES = 50
# A numeric target with more distinct values than this (and not all integers few enough to be
# classes) is a regression target under --task auto.
_AUTO_MAX_CLASSES = 20
# Probabilities this close to the top one count as a tie, broken towards the first class as
# numpy's argmax does on scikit-learn's exact float64 ties (float32 sums differ by ULPs).
TIE_MARGIN = 1e-6


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


def top_class(proba: np.ndarray) -> np.ndarray:
    """Index of the predicted class per row, ties (within ``TIE_MARGIN``) to the first."""
    return (proba >= proba.max(axis=1, keepdims=True) - TIE_MARGIN).argmax(axis=1)


def _plain(value: Any) -> Any:
    return plain_label(value)


def _label_text(value: Any) -> str:
    # 1, 1.0 and "1" from JSON are the same class.
    return str(_plain(value)) if value is not None else ""


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


class Classification(Task):
    name = CLASSIFICATION
    quality_estimator = "atc_shift"
    metrics = ("accuracy", "f1", "precision", "recall", "roc_auc", "log_loss")
    higher_is_better = {
        "accuracy": True,
        "f1": True,
        "precision": True,
        "recall": True,
        "roc_auc": True,
        "log_loss": False,
    }
    compared = ("accuracy", "f1")
    quality_metric = "accuracy"
    prediction_drift_method = "chisquare"

    def classes(self, labels):
        return tuple(_plain(v) for v in sorted(labels.dropna().unique(), key=label_sort_key))

    def raw(self, model, frame):
        return model.predict_proba(frame)

    def onnx_options(self, estimator):
        return {id(estimator): {"zipmap": False}}

    def outputs(self, raw: np.ndarray, classes: Sequence[Any]) -> Outputs:
        proba = np.clip(np.asarray(raw, dtype=np.float64), 0.0, 1.0)
        top = top_class(proba)
        classes = list(classes)
        return Outputs([classes[i] for i in top.tolist()], proba, top)

    def answer(self, outputs: Outputs, rows: slice, keys: Sequence[str]) -> dict[str, Any]:
        return {
            "predictions": outputs.predictions[rows],
            "probabilities": _by_class(keys, outputs.rounded[rows]),
        }

    def log_outputs(self, outputs, keys):
        rounded = outputs.rounded
        return outputs.predictions, dict(zip(keys, rounded.T.tolist(), strict=True))

    def count(self, sink, outputs, keys, version):
        sink.classes_predicted(keys, outputs.top, outputs.proba.max(axis=1), version)

    def score(self, truth, outputs, classes):
        return classification_metrics(
            np.asarray(truth), np.asarray(outputs.predictions), outputs.proba, classes
        )

    def score_logged(self, frame, classes):
        keys = [_label_text(c) for c in classes]
        truth = frame["label"].map(_label_text)
        known = truth.isin(keys).to_numpy()
        # A label outside the model's classes (a client's mistake) cannot be scored.
        truth = truth[known].to_numpy()
        predicted = frame["prediction"].map(_label_text)[known].to_numpy()
        proba = np.array(
            [[float(p.get(c, 0.0)) for c in keys] for p in frame["probabilities"][known]]
        ).reshape(-1, len(keys))
        out: dict[str, Any] = {"labeled_rows": int(len(frame))}
        if int((~known).sum()):
            out["unknown_labels"] = int((~known).sum())
        if not len(truth):
            return {**{m: None for m in self.metrics}, **out}
        return {**classification_metrics(truth, predicted, proba, keys), **out}

    def naive(self, train_labels, test_labels):
        majority = train_labels.value_counts().idxmax()
        return {"accuracy": round(float((test_labels == majority).mean()), 6)}

    def gate(self, metrics, naive, minimum):
        accuracy = metrics["accuracy"]
        if accuracy < minimum:
            return f"accuracy {accuracy:.4f} is below the gate's {minimum}"
        if accuracy <= naive["accuracy"]:
            return (
                f"accuracy {accuracy:.4f} does not beat always predicting the "
                f"majority class ({naive['accuracy']:.4f})"
            )
        return None

    def check_label(self, value, classes):
        # Exactly one of the classes: 1 for an integer class, not "1", 1.0 or true.
        if type(value) not in (int, str) or (type(value), value) not in {
            (type(c), c) for c in classes
        }:
            raise BadLabel(
                f"{_short(value)} is not a class of the model (classes: {list(classes)[:20]})"
            )
        return value

    def normalise_labels(self, labels):
        """Integral labels as int64, anything else as text: the service answers with these."""
        plain = labels.map(_plain)
        if all(isinstance(v, int) for v in plain):
            return plain.astype("int64")
        return plain.astype(str)

    def reference_label(self, value, classes):
        return {_label_text(c): c for c in classes}[_label_text(value)]

    def wrong_label(self, label, classes, spread):
        classes = list(classes)
        return classes[(classes.index(label) + 1) % len(classes)]

    def label_schema(self, classes):
        return {"enum": list(classes), "description": "One of the model's classes"}

    def answer_schema(self, classes):
        keys = [str(c) for c in classes]
        probability = {"type": "number", "minimum": 0, "maximum": 1}
        return {
            "predictions": {"type": "array", "items": {"enum": list(classes)}},
            "probabilities": {
                "type": "array",
                "description": "Each instance's probability of each class",
                "items": {
                    "type": "object",
                    "required": keys,
                    "additionalProperties": False,
                    "properties": {k: probability for k in keys},
                },
            },
        }

    def prediction_values(self, values):
        return values.dropna().map(_label_text)

    def target_problem(self, labels):
        classes = labels.nunique()
        if classes < 2:
            return "has a single class; need at least 2"
        if classes > MAX_CLASSES:
            return (
                f"has {classes} classes; at most {MAX_CLASSES} are supported "
                "(is it a regression target? --task regression)"
            )
        return None

    def stratify(self, labels):
        return labels if labels.value_counts().min() >= 2 else None

    def estimator(self, kind, *, seed, n_estimators):
        from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
        from sklearn.linear_model import LogisticRegression

        # n_jobs=1: serving calls are small; a thread pool per call costs more than it saves
        return {
            "random_forest": lambda: RandomForestClassifier(
                n_estimators=n_estimators, random_state=seed, n_jobs=1
            ),
            "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(random_state=seed),
            "linear": lambda: LogisticRegression(max_iter=2000, random_state=seed),
        }[kind]()

    def disagreement(self, expected, got):
        """Max |Δp| over all classes; rows whose predicted class differs."""
        worst = float(np.abs(expected.proba - got.proba).max(initial=0.0))
        return worst, int((expected.top != got.top).sum())

    def reference_predictions(self, outputs):
        return [str(p) for p in outputs.predictions]

    agreement_kind = "share_equal"

    def agreement(self, production, candidate):
        a = [_label_text(v) for v in production]
        b = [_label_text(v) for v in candidate]
        return float(np.mean([x == y for x, y in zip(a, b, strict=True)])) if a else math.nan

    def paired_test(self, labels, production, candidate):
        """McNemar's test, mid-p version: of the rows exactly one model gets right, the
        candidate's share against one half. Exact binomial, so valid on few discordant rows;
        the mid-p keeps the exact test's level closely without its conservatism."""
        from scipy.stats import binom

        truth = [_label_text(v) for v in labels]
        right_p = np.array([_label_text(v) == t for v, t in zip(production, truth, strict=True)])
        right_c = np.array([_label_text(v) == t for v, t in zip(candidate, truth, strict=True)])
        only_p, only_c = int((right_p & ~right_c).sum()), int((right_c & ~right_p).sum())
        n = only_p + only_c
        if n == 0:
            return "mcnemar_midp", 1.0, 0
        k = min(only_p, only_c)
        p = 2 * binom.cdf(k, n, 0.5) - binom.pmf(k, n, 0.5)
        return "mcnemar_midp", float(min(1.0, p)), int(np.sign(only_c - only_p))

    def protocol_outputs(self, fields, classes):
        keys = [str(c) for c in classes]
        numbered = all(type(c) is int for c in classes)
        predictions = fields["predictions"]
        labels = (
            np.asarray(predictions, dtype=np.int64) if numbered else [str(p) for p in predictions]
        )
        proba = np.array(
            [[row[k] for k in keys] for row in fields["probabilities"]], dtype=np.float64
        ).reshape(-1, len(keys))
        return [
            ("predict", "INT64" if numbered else "BYTES", labels, {}),
            ("predict_proba", "FP64", proba, {"classes": keys}),
        ]


class Regression(Task):
    name = REGRESSION
    quality_estimator = "dle_shift"
    metrics = ("mae", "rmse", "r2", "mean_error")
    higher_is_better = {"mae": False, "rmse": False, "r2": True, "mean_error": False}
    compared = ("rmse",)
    quality_metric = "rmse"
    prediction_drift_method = "ks"

    def classes(self, labels):
        return ()

    def raw(self, model, frame):
        return model.predict(frame)

    def outputs(self, raw, classes=()):
        values = np.asarray(raw, dtype=np.float64).reshape(-1)
        return Outputs(values.tolist())

    def answer(self, outputs, rows, keys=()):
        return {"predictions": [round(v, 6) for v in outputs.predictions[rows]]}

    def log_outputs(self, outputs, keys=()):
        return outputs.predictions, {}

    def count(self, sink, outputs, keys, version):
        sink.values_predicted(outputs.predictions, version)

    def score(self, truth, outputs, classes=()):
        return regression_metrics(np.asarray(truth, dtype=float), np.asarray(outputs.predictions))

    def score_logged(self, frame, classes=()):
        truth = pd.to_numeric(frame["label"], errors="coerce").to_numpy(dtype=float)
        predicted = pd.to_numeric(frame["prediction"], errors="coerce").to_numpy(dtype=float)
        known = np.isfinite(truth) & np.isfinite(predicted)
        out: dict[str, Any] = {"labeled_rows": int(len(frame))}
        if int((~known).sum()):
            out["unknown_labels"] = int((~known).sum())
        if not known.any():
            return {**{m: None for m in self.metrics}, **out}
        return {**regression_metrics(truth[known], predicted[known]), **out}

    def naive(self, train_labels, test_labels):
        mean = float(train_labels.mean())
        truth = test_labels.to_numpy(dtype=float)
        return {"rmse": round(float(np.sqrt(np.mean((truth - mean) ** 2))), 6)}

    def gate(self, metrics, naive, minimum):
        r2, rmse = metrics["r2"], metrics["rmse"]
        if r2 is None or r2 < minimum:
            return f"R² {r2} is below the gate's {minimum}"
        if rmse >= naive["rmse"]:
            return (
                f"RMSE {rmse:.4f} does not beat always predicting the training mean "
                f"({naive['rmse']:.4f})"
            )
        return None

    def check_label(self, value, classes=()):
        if type(value) not in (int, float) or not math.isfinite(value):
            raise BadLabel(f"{_short(value)} is not a finite number (the model is a regressor)")
        return float(value)

    def normalise_labels(self, labels):
        return pd.to_numeric(labels, errors="raise").astype("float64")

    def reference_label(self, value, classes=()):
        return float(value)

    def wrong_label(self, label, classes, spread):
        return float(label) + spread

    def label_schema(self, classes=()):
        return {"type": "number", "description": "The true value (a finite number)"}

    def answer_schema(self, classes=()):
        return {
            "predictions": {
                "type": "array",
                "items": {"type": "number"},
                "description": "The predicted value of each instance",
            }
        }

    def prediction_values(self, values):
        return pd.to_numeric(values, errors="coerce").dropna().astype(float)

    def target_problem(self, labels):
        numbers = pd.to_numeric(labels, errors="coerce")
        if numbers.isna().any():
            first = labels[numbers.isna()].iloc[0]
            return f"is not numeric ({_short(first)}), so it cannot be a regression target"
        if not np.isfinite(numbers.to_numpy(dtype=float)).all():
            return "has infinite values"
        if numbers.nunique() < 2:
            return "is constant; nothing to learn"
        return None

    def estimator(self, kind, *, seed, n_estimators):
        from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
        from sklearn.linear_model import Ridge

        return {
            "random_forest": lambda: RandomForestRegressor(
                n_estimators=n_estimators, random_state=seed, n_jobs=1
            ),
            "hist_gradient_boosting": lambda: HistGradientBoostingRegressor(random_state=seed),
            "linear": lambda: Ridge(),
        }[kind]()

    def disagreement(self, expected, got):
        """Max |Δ| relative to max(1, |expected|): float32 carries ~7 significant digits, so
        the error scales with the value, and near zero an absolute error is what matters."""
        a = np.asarray(expected.predictions, dtype=float)
        b = np.asarray(got.predictions, dtype=float)
        return float((np.abs(a - b) / np.maximum(1.0, np.abs(a))).max(initial=0.0)), 0

    def reference_predictions(self, outputs):
        return [float(p) for p in outputs.predictions]

    agreement_kind = "mean_absolute_difference"

    def agreement(self, production, candidate):
        a, b = np.asarray(production, dtype=float), np.asarray(candidate, dtype=float)
        return float(np.abs(a - b).mean()) if len(a) else math.nan

    def paired_test(self, labels, production, candidate):
        """Wilcoxon's signed-rank test of the paired differences of absolute errors: absolute
        errors are skewed and heavy-tailed, which a paired t-test's level depends on; the
        ranks make one large error count once, not quadratically."""
        from scipy.stats import rankdata, wilcoxon

        truth = np.asarray(labels, dtype=float)
        d = np.abs(np.asarray(production, dtype=float) - truth) - np.abs(
            np.asarray(candidate, dtype=float) - truth
        )
        d = d[np.isfinite(d) & (d != 0)]
        if len(d) == 0:
            return "wilcoxon_signed_rank", 1.0, 0
        p = float(wilcoxon(d).pvalue)
        ranks = rankdata(np.abs(d))
        return "wilcoxon_signed_rank", p, int(np.sign(ranks[d > 0].sum() - ranks[d < 0].sum()))

    def protocol_outputs(self, fields, classes=()):
        return [("predict", "FP64", np.asarray(fields["predictions"], dtype=np.float64), {})]

    def prediction_buckets(self, reference_predictions):
        """At most 19 bounds (20 buckets with +Inf): the reference predictions' 5 % quantiles,
        rounded to 4 significant digits, so each bucket holds about 5 % of normal traffic."""
        values = np.asarray(reference_predictions, dtype=float)
        values = values[np.isfinite(values)]
        if not len(values):
            return []
        quantiles = np.quantile(values, np.linspace(0.05, 0.95, 19))
        return sorted({float(f"{q:.4g}") for q in quantiles})


CLASSIFIER = Classification()
REGRESSOR = Regression()
_BY_NAME = {CLASSIFICATION: CLASSIFIER, REGRESSION: REGRESSOR}


def get_task(name: str) -> Task:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None


def task_for(contract: Mapping[str, Any]) -> Task:
    """The task of a saved model; models saved before tasks existed are classifiers."""
    return get_task(contract.get("task") or CLASSIFICATION)


def infer_task(labels: pd.Series) -> str:
    """``--task auto``: text, booleans and few distinct integers are classes; other numbers
    (any fraction, or more distinct integers than ``_AUTO_MAX_CLASSES``) are a regression."""
    values = labels.dropna()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return CLASSIFICATION
    numbers = values.to_numpy(dtype=float)
    integral = bool(np.all(np.mod(numbers, 1) == 0))
    if integral and values.nunique() <= _AUTO_MAX_CLASSES:
        return CLASSIFICATION
    return REGRESSION


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _by_class(keys: Sequence[str], proba: np.ndarray) -> list[dict[str, float]]:
    """Each row of ``proba`` as ``{class: probability}``."""
    if proba.shape[1:] != (len(keys),):
        raise ValueError(f"{proba.shape} probabilities for {len(keys)} classes")
    if len(keys) == 2:  # two classes, the usual case: a dict display is twice as fast
        k0, k1 = keys
        return [{k0: p0, k1: p1} for p0, p1 in proba.tolist()]
    return [dict(zip(keys, row, strict=True)) for row in proba.tolist()]


def regression_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """MAE, RMSE, R² (None for fewer than two labels or constant labels) and the mean error
    (prediction − label: positive when the model over-predicts). Rounded to six places."""
    error = predicted - truth
    n = len(truth)
    ss_tot = float(((truth - truth.mean()) ** 2).sum()) if n else 0.0
    r2 = None if n < 2 or ss_tot == 0 else 1.0 - float((error**2).sum()) / ss_tot
    metrics = {
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "r2": r2,
        "mean_error": float(error.mean()),
    }
    return {k: None if v is None else round(v, 6) for k, v in metrics.items()}


def classification_metrics(
    truth: np.ndarray, predicted: np.ndarray, proba: np.ndarray, classes: Sequence[Any]
) -> dict[str, float | None]:
    """Accuracy; F1, precision and recall (two classes: of the last class, as scikit-learn
    orders them; more: macro averages); ROC AUC (None when undefined: one class among the
    labels); log loss. Rounded to six places. ``proba`` columns follow ``classes``."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_score, recall_score

    classes = list(classes)
    binary = len(classes) == 2
    avg = {"average": "binary", "pos_label": classes[-1]} if binary else {"average": "macro"}
    metrics: dict[str, float | None] = {
        "accuracy": accuracy_score(truth, predicted),
        "f1": f1_score(truth, predicted, labels=classes, zero_division=0, **avg),
        "precision": precision_score(truth, predicted, labels=classes, zero_division=0, **avg),
        "recall": recall_score(truth, predicted, labels=classes, zero_division=0, **avg),
        "roc_auc": _roc_auc(truth, proba, classes),
        "log_loss": log_loss(truth, _normalised(proba), labels=classes),
    }
    return {k: None if v is None else round(float(v), 6) for k, v in metrics.items()}


def _normalised(proba: np.ndarray) -> np.ndarray:
    # Logged probabilities are rounded; scikit-learn wants rows that sum to one.
    sums = proba.sum(axis=1, keepdims=True)
    return np.where(sums > 0, proba / np.where(sums > 0, sums, 1), 1 / proba.shape[1])


def _roc_auc(truth: np.ndarray, proba: np.ndarray, classes: list) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(set(truth.tolist())) < 2:
        return None
    try:
        if len(classes) == 2:
            return roc_auc_score(truth == classes[-1], proba[:, 1])
        value = roc_auc_score(truth, proba, multi_class="ovr", average="macro", labels=classes)
    except ValueError:  # a class absent from the labels
        return None
    return None if math.isnan(value) else value


# Every metric either task reports: gauges and dashboards list them once.
QUALITY_METRICS = tuple(dict.fromkeys(CLASSIFIER.metrics + REGRESSOR.metrics))
