"""Average thresholded confidence (Garg et al., ICLR 2022): a confidence threshold learnt on
the holdout so that the share of rows above it equals the holdout's accuracy; a window's
estimated accuracy is its share above the threshold. F1 and ROC AUC stay CBPE's."""

from __future__ import annotations

import numpy as np

from vigil.estimate.base import Estimate
from vigil.estimate.cbpe import ConfidenceBased


def fit_threshold(raw: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The threshold on the top probability, and the share of rows exactly at it that count
    as above (forest probabilities take few distinct values, so many rows tie)."""
    raw = np.asarray(raw, dtype=float)
    score = top_score(raw)
    accuracy = float(np.mean(raw.argmax(axis=1) == np.asarray(truth)))
    threshold = float(np.quantile(score, 1.0 - accuracy, method="lower"))
    above, at = np.mean(score > threshold), np.mean(score == threshold)
    tie = float(np.clip((accuracy - above) / at, 0.0, 1.0)) if at > 0 else 0.0
    return {"threshold": threshold, "tie_share": tie}


def top_score(raw: np.ndarray) -> np.ndarray:
    """Each row's top probability, rounded as the threshold was fitted on (so ties stay ties)."""
    return np.asarray(raw, dtype=float).max(axis=1).round(6)


def counted_above(score: np.ndarray, threshold, tie_share) -> np.ndarray:
    """How much each score counts as above the threshold: 1 above, ``tie_share`` at it.
    Broadcasts, so several thresholds can be applied at once."""
    return (score > threshold) + tie_share * (score == threshold)


def above(raw: np.ndarray, threshold: float, tie_share: float) -> np.ndarray:
    """Per row, whether its top probability is above the threshold (a tie counts
    ``tie_share``): the window's mean is the estimated accuracy."""
    return counted_above(top_score(raw), threshold, tie_share)


class AverageThresholdedConfidence(ConfidenceBased):
    name = "atc"

    def fit(self, raw, features, truth, seed):
        state, blob = super().fit(raw, features, truth, seed)
        state["atc"] = fit_threshold(raw, truth)
        return state, blob

    def estimate(self, state, model, rows) -> Estimate:
        out = super().estimate(state, model, rows)
        out.values["accuracy"] = float(above(rows["proba"], **state["atc"]).mean())
        return out

    def chunk_estimate(self, state, raw, calibrated) -> dict:
        return with_atc_accuracy(super().chunk_estimate(state, raw, calibrated), state, raw)


def with_atc_accuracy(found: dict, state, raw: np.ndarray) -> dict:
    """``found`` with its accuracy replaced by ATC's on the rows ``raw``."""
    return {**found, "accuracy": float(above(raw, **state["atc"]).mean())}
