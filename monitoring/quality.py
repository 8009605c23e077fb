"""Live model quality: the production model's latest labeled predictions scored like training.

Metrics are computed the way ``training.model.score`` computes the held-out ones (binary F1,
precision and recall on the last class; macro averages for multiclass), so the live figures
compare like for like with ``vigil_model_quality_reference``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from vigil.schema import FeatureSchema, _plain

QUALITY_METRICS = ("accuracy", "f1", "precision", "recall", "roc_auc", "log_loss")


def _label(value: Any) -> str:
    # 1, 1.0 and "1" from JSON are the same class.
    return str(_plain(value)) if value is not None else ""


def live_quality(
    log,
    model_version: str,
    schema: FeatureSchema,
    n: int,
    reference_labels: pd.Series | None = None,
    alpha: float = 0.01,
) -> dict | None:
    """Quality over the newest ``n`` labeled predictions; None before any label exists.

    With ``reference_labels`` (the training labels) it also tests label drift: whether the
    class mix of the labeled rows differs from training, a chi-square test at ``alpha``.
    """
    labeled = log.labeled_count(model_version)  # cheap; the join below walks the whole log
    if not labeled:
        return None
    frame = log.labeled(model_version, n)
    if frame.empty:
        return None
    out = score_labeled(frame, schema)
    out["labeled_fraction"] = round(labeled / log.count(model_version), 6)
    delay = (frame["received_at"] - frame["created_at"]).to_numpy(dtype=float)
    out["label_delay_seconds_median"] = round(float(np.median(delay)), 3)
    out["label_delay_seconds_p90"] = round(float(np.quantile(delay, 0.9)), 3)
    if reference_labels is not None and len(reference_labels):
        from monitoring.detect import chisquare_pvalue

        p_value = chisquare_pvalue(
            reference_labels.map(_label).astype(object), frame["label"].map(_label).astype(object)
        )
        out["label_drift"] = {
            "method": "chisquare",
            "score_kind": "p_value",
            "score": p_value,
            "threshold": alpha,
            "drifted": bool(p_value < alpha),
        }
    return out


def score_labeled(frame: pd.DataFrame, schema: FeatureSchema) -> dict:
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    classes = [_label(c) for c in schema.classes]
    truth = frame["label"].map(_label)
    known = truth.isin(classes).to_numpy()
    # A label outside the model's classes (a client's mistake) cannot be scored.
    truth = truth[known].to_numpy()
    predicted = frame["prediction"].map(_label)[known].to_numpy()
    proba = np.array(
        [[float(p.get(c, 0.0)) for c in classes] for p in frame["probabilities"][known]]
    ).reshape(-1, len(classes))
    out: dict[str, Any] = {"labeled_rows": int(len(frame))}
    if int((~known).sum()):
        out["unknown_labels"] = int((~known).sum())
    if not len(truth):
        return {**{m: None for m in QUALITY_METRICS}, **out}
    binary = len(classes) == 2
    avg = {"average": "binary", "pos_label": classes[-1]} if binary else {"average": "macro"}
    metrics: dict[str, float | None] = {
        "accuracy": accuracy_score(truth, predicted),
        "f1": f1_score(truth, predicted, labels=classes, zero_division=0, **avg),
        "precision": precision_score(truth, predicted, labels=classes, zero_division=0, **avg),
        "recall": recall_score(truth, predicted, labels=classes, zero_division=0, **avg),
        "log_loss": log_loss(truth, _normalised(proba), labels=classes),
        "roc_auc": _roc_auc(roc_auc_score, truth, proba, classes),
    }
    rounded = {k: (None if v is None else round(float(v), 6)) for k, v in metrics.items()}
    return {**rounded, **out}


def _normalised(proba: np.ndarray) -> np.ndarray:
    # Logged probabilities are rounded; sklearn wants rows that sum to one.
    sums = proba.sum(axis=1, keepdims=True)
    return np.where(sums > 0, proba / np.where(sums > 0, sums, 1), 1 / proba.shape[1])


def _roc_auc(roc_auc_score, truth, proba, classes) -> float | None:
    if len(set(truth)) < 2:
        return None  # undefined with one class among the labels
    try:
        if len(classes) == 2:
            return roc_auc_score(truth == classes[-1], proba[:, 1])
        value = roc_auc_score(truth, proba, multi_class="ovr", average="macro", labels=classes)
    except ValueError:
        return None
    return None if math.isnan(value) else value
