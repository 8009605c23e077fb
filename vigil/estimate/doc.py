"""Difference of confidences (Guillory et al., 2021): the window's accuracy is the holdout's
plus how much the model's mean top probability moved. F1 and ROC AUC stay CBPE's."""

from __future__ import annotations

import numpy as np

from vigil.estimate.base import Estimate
from vigil.estimate.cbpe import ConfidenceBased


class DifferenceOfConfidences(ConfidenceBased):
    name = "doc"

    def fit(self, raw, features, truth, seed):
        state, blob = super().fit(raw, features, truth, seed)
        raw = np.asarray(raw, dtype=float)
        state["doc"] = {
            "accuracy": float(np.mean(raw.argmax(axis=1) == np.asarray(truth))),
            "confidence": float(raw.max(axis=1).mean()),
        }
        return state, blob

    def estimate(self, state, model, rows) -> Estimate:
        out = super().estimate(state, model, rows)
        confidence = float(np.asarray(rows["proba"], dtype=float).max(axis=1).mean())
        moved = state["doc"]["accuracy"] + confidence - state["doc"]["confidence"]
        out.values["accuracy"] = float(np.clip(moved, 0.0, 1.0))
        return out
