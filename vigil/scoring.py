"""Classification quality, computed one way: for the held-out split at training and for the
labeled live predictions in the monitor, so the two compare like for like (the
``ModelQualityDrop`` alert sets one against the other)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

QUALITY_METRICS = ("accuracy", "f1", "precision", "recall", "roc_auc", "log_loss")


def classification_metrics(
    truth: np.ndarray, predicted: np.ndarray, proba: np.ndarray, classes: Sequence[Any]
) -> dict[str, float | None]:
    """Accuracy; F1, precision and recall (two classes: of the last class, as scikit-learn
    orders them; more: macro averages); ROC AUC (None when undefined: one class among the
    labels); log loss. Rounded to six places. ``proba`` columns follow ``classes``."""
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
    )

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
