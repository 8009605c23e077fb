"""The per-window quality estimate of a check, its error where labels exist, and the words
that say whether it moved (``vigil.estimate`` holds the estimators themselves)."""

from __future__ import annotations

import logging

import pandas as pd

from vigil.estimate import QualityEstimator
from vigil.schema import FeatureSchema, to_frame

log = logging.getLogger(__name__)


def window_estimate(
    estimator: QualityEstimator, schema: FeatureSchema, frame: pd.DataFrame
) -> tuple[dict[str, float | None], dict | None]:
    """``({metric: value, metric_se: …}, support)`` over a logged window (``frame``: as the
    log reads it, with ``prediction`` and ``probabilities``); support says whether the window
    lies where the reference can vouch for the estimate (None when the estimator cannot tell)."""
    features = to_frame(schema, frame)
    rows = estimator.rows_from_log(frame, features, schema.classes)
    return estimator.assess(rows, len(frame))


def estimate_errors(
    estimator: QualityEstimator, schema: FeatureSchema, labeled: pd.DataFrame, quality: dict
) -> dict[str, float]:
    """Estimate − realized per metric on the same labeled rows (``labeled``: as
    ``InferenceLog.labeled`` reads them; ``quality``: their realized metrics)."""
    if labeled.empty:
        return {}
    estimated, _ = window_estimate(estimator, schema, labeled)
    out = {}
    for metric in estimator.metrics:
        if estimated.get(metric) is not None and quality.get(metric) is not None:
            out[metric] = round(estimated[metric] - quality[metric], 6)
    return out


def movement(
    estimated: dict[str, float | None],
    reference: dict,
    metrics: tuple[str, ...],
    support: dict | None = None,
) -> str | None:
    """How the estimate stands against the held-out reference, in a line: "estimated
    accuracy unchanged within ±0.031" or "estimated accuracy moved -0.120 (±0.031)" (±3 SE);
    first, when the window lies beyond the reference's support, that the estimate is outside
    what it can vouch for."""
    parts = []
    if support is not None and not support.get("vouched", True):
        share = support.get("beyond_support_share", 0.0)
        parts.append(
            f"estimate outside what the reference vouches for ({share:.0%} of the window "
            "beyond the reference's support)"
        )
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
