"""Average thresholded confidence (Garg et al., ICLR 2022): a confidence threshold learnt on
the holdout so that the share of rows above it equals the holdout's accuracy; a window's
estimated accuracy is its share above the threshold. F1 and ROC AUC stay CBPE's."""

from __future__ import annotations

import numpy as np

from vigil.estimate.base import Estimate
from vigil.estimate.cbpe import ConfidenceBased


def _share_above(score: np.ndarray, threshold: float, tie_share: float) -> float:
    """Rows above the threshold, rows at it counted with ``tie_share`` (forest probabilities
    take few distinct values)."""
    return float(np.mean(score > threshold) + tie_share * np.mean(score == threshold))


class AverageThresholdedConfidence(ConfidenceBased):
    name = "atc"

    def fit(self, raw, features, truth, seed):
        state, blob = super().fit(raw, features, truth, seed)
        raw = np.asarray(raw, dtype=float)
        score = raw.max(axis=1).round(6)
        accuracy = float(np.mean(raw.argmax(axis=1) == np.asarray(truth)))
        threshold = float(np.quantile(score, 1.0 - accuracy, method="lower"))
        above, at = np.mean(score > threshold), np.mean(score == threshold)
        tie = float(np.clip((accuracy - above) / at, 0.0, 1.0)) if at > 0 else 0.0
        state["atc"] = {"threshold": threshold, "tie_share": tie}
        return state, blob

    def estimate(self, state, model, rows) -> Estimate:
        out = super().estimate(state, model, rows)
        score = np.asarray(rows["proba"], dtype=float).max(axis=1).round(6)
        out.values["accuracy"] = _share_above(score, **state["atc"])
        return out
