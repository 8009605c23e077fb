"""A classifier's task: class labels and their probabilities, accuracy-like metrics, the
majority class as the naive predictor, a chi-square test for prediction drift."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from vigil.tasks.base import CLASSIFICATION, MAX_CLASSES, BadLabel, Outputs, Task
from vigil.tasks.labels import label_sort_key, plain_label
from vigil.text import shortened

# Probabilities this close to the top one count as a tie, broken towards the first class as
# numpy's argmax does on scikit-learn's exact float64 ties (float32 sums differ by ULPs).
TIE_MARGIN = 1e-6


def top_class(proba: np.ndarray) -> np.ndarray:
    """Index of the predicted class per row, ties (within ``TIE_MARGIN``) to the first."""
    return (proba >= proba.max(axis=1, keepdims=True) - TIE_MARGIN).argmax(axis=1)


def _label_text(value: Any) -> str:
    # 1, 1.0 and "1" from JSON are the same class.
    return str(plain_label(value)) if value is not None else ""


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
        return tuple(plain_label(v) for v in sorted(labels.dropna().unique(), key=label_sort_key))

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
                f"{shortened(value)} is not a class of the model (classes: {list(classes)[:20]})"
            )
        return value

    def normalise_labels(self, labels):
        """Integral labels as int64, anything else as text: the service answers with these."""
        plain = labels.map(plain_label)
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


CLASSIFIER = Classification()


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


def _by_class(keys: Sequence[str], proba: np.ndarray) -> list[dict[str, float]]:
    """Each row of ``proba`` as ``{class: probability}``."""
    if proba.shape[1:] != (len(keys),):
        raise ValueError(f"{proba.shape} probabilities for {len(keys)} classes")
    if len(keys) == 2:  # two classes, the usual case: a dict display is twice as fast
        k0, k1 = keys
        return [{k0: p0, k1: p1} for p0, p1 in proba.tolist()]
    return [dict(zip(keys, row, strict=True)) for row in proba.tolist()]


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
