"""The metrics an estimate and the realized value share, with soft labels and row weights.

Soft labels (row i belongs to class c with weight ``positive[i, c]``) give a metric's
expectation under calibrated probabilities; one-hot labels give the realized metric. Row
weights (importance weights between the reference and a window) give the metric the window
would see if it held the reference's rows in the window's proportions.
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 10


def _auc(score: np.ndarray, positive: np.ndarray, weight: np.ndarray | None = None) -> float | None:
    """ROC AUC with row i counted as positive with weight ``positive[i]`` (0/1 labels give the
    usual AUC; calibrated probabilities its expectation), each row weighted by ``weight``.
    Ties count one half; a row is never paired with itself. None when there is no positive or
    no negative weight."""
    w = np.ones(len(score)) if weight is None else weight
    pos, neg = w * positive, w * (1.0 - positive)
    pairs = pos.sum() * neg.sum() - float((pos * neg).sum())
    if pairs <= 1e-12:
        return None
    groups, inverse = np.unique(score, return_inverse=True)
    neg_in_group = np.bincount(inverse, weights=neg, minlength=len(groups))
    below = np.concatenate(([0.0], np.cumsum(neg_in_group)[:-1]))[inverse]
    ties = neg_in_group[inverse] - neg
    return float((pos * (below + 0.5 * ties)).sum() / pairs)


def _f1(predicted: np.ndarray, positive: np.ndarray, weight: np.ndarray) -> float:
    tp = float((weight * positive)[predicted].sum())
    fp = float((weight * (1.0 - positive))[predicted].sum())
    fn = float((weight * positive)[~predicted].sum())
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0


def classifier_metrics(
    raw: np.ndarray, positive: np.ndarray, weight: np.ndarray | None = None
) -> dict[str, float | None]:
    """Accuracy, F1 (last class for two, macro for more) and ROC AUC (macro one-vs-rest) of
    predictions ``top(raw)`` when row i belongs to class c with weight ``positive[i, c]``:
    one-hot labels give the realized metrics (as ``vigil.tasks.classification_metrics``),
    calibrated probabilities their expectations. ``weight``: per-row weights (default 1)."""
    from vigil.tasks import top_class

    top = top_class(raw)
    k = raw.shape[1]
    w = np.ones(len(top)) if weight is None else np.asarray(weight, dtype=float)
    accuracy = float((w * positive[np.arange(len(top)), top]).sum() / max(w.sum(), 1e-12))
    classes = [k - 1] if k == 2 else range(k)
    f1 = float(np.mean([_f1(top == c, positive[:, c], w) for c in classes]))
    aucs = [_auc(raw[:, c], positive[:, c], w) for c in classes]
    auc = None if any(a is None for a in aucs) else float(np.mean(aucs))
    return {"accuracy": accuracy, "f1": f1, "roc_auc": auc}


def regressor_metrics(
    abs_error: np.ndarray, sq_error: np.ndarray, weight: np.ndarray | None = None
) -> dict[str, float]:
    w = np.ones(len(abs_error)) if weight is None else np.asarray(weight, dtype=float)
    total = max(float(w.sum()), 1e-12)
    return {
        "mae": float((w * abs_error).sum() / total),
        "rmse": float(np.sqrt(max(float((w * sq_error).sum() / total), 0.0))),
    }


def spread(
    draws: list[dict[str, float | None]], metrics: tuple[str, ...]
) -> dict[str, float | None]:
    """Each metric's standard deviation over draws (None with fewer than two values)."""
    out: dict[str, float | None] = {}
    for m in metrics:
        values = [d[m] for d in draws if d[m] is not None]
        out[m] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return out


def error_spread(
    realized: list[dict[str, float | None]],
    estimated: list[dict[str, float | None]],
    metrics: tuple[str, ...],
) -> dict[str, float | None]:
    """Each metric's standard deviation of estimate minus realized over paired draws (None
    with fewer than two pairs): how far the estimate strays from the truth by sampling."""
    out: dict[str, float | None] = {}
    for m in metrics:
        gaps = [e[m] - r[m] for r, e in zip(realized, estimated, strict=True)
                if r[m] is not None and e[m] is not None]  # fmt: skip
        out[m] = float(np.std(gaps, ddof=1)) if len(gaps) > 1 else None
    return out


def expected_calibration_error(proba: np.ndarray, truth: np.ndarray) -> float:
    """Mean |confidence − frequency| over ``ECE_BINS`` equal-width bins, weighted by rows."""
    bins = np.minimum((proba * ECE_BINS).astype(int), ECE_BINS - 1)
    total = 0.0
    for b in np.unique(bins):
        inside = bins == b
        total += inside.sum() * abs(proba[inside].mean() - truth[inside].mean())
    return float(total / len(proba))
