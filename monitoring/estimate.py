"""The per-window quality estimate of a check, its error where labels exist, and the words
that say whether it moved (``vigil.quality_estimate`` holds the estimators themselves)."""

from __future__ import annotations

import logging

import pandas as pd

from vigil.quality_estimate import QualityEstimator
from vigil.schema import FeatureSchema, to_frame

log = logging.getLogger(__name__)


def window_estimate(
    estimator: QualityEstimator, schema: FeatureSchema, frame: pd.DataFrame
) -> dict[str, float | None]:
    """``{metric: value, metric_se: …}`` over a logged window (``frame``: as the log reads
    it, with ``prediction`` and ``probabilities``)."""
    features = to_frame(schema, frame)
    rows = estimator.rows_from_log(frame, features, schema.classes)
    return estimator.estimate(rows, len(frame))


def estimate_errors(
    estimator: QualityEstimator, schema: FeatureSchema, labeled: pd.DataFrame, quality: dict
) -> dict[str, float]:
    """Estimate − realized per metric on the same labeled rows (``labeled``: as
    ``InferenceLog.labeled`` reads them; ``quality``: their realized metrics)."""
    if labeled.empty:
        return {}
    estimated = window_estimate(estimator, schema, labeled)
    out = {}
    for metric in estimator.metrics:
        if estimated.get(metric) is not None and quality.get(metric) is not None:
            out[metric] = round(estimated[metric] - quality[metric], 6)
    return out


def movement(
    estimated: dict[str, float | None], reference: dict, metrics: tuple[str, ...]
) -> str | None:
    """How the estimate stands against the held-out reference, in a line: "estimated
    accuracy unchanged within ±0.031" or "estimated accuracy moved -0.120 (±0.031)" (±3 SE)."""
    parts = []
    for m in metrics:
        value, se, ref = estimated.get(m), estimated.get(m + "_se"), reference.get(m)
        if value is None or se is None or ref is None:
            continue
        band = 3 * se
        if abs(value - ref) <= band:
            parts.append(f"estimated {m} unchanged within ±{band:.3f}")
        else:
            parts.append(f"estimated {m} moved {value - ref:+.3f} (±{band:.3f})")
    return "; ".join(parts) or None
