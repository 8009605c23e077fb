"""Confidence-based performance estimation (as NannyML's CBPE), the classifiers' fallback.

Isotonic calibration of each class's probability, kept only where it lowers the expected
calibration error across stratified splits of the holdout. A window's expected accuracy, F1
and ROC AUC follow from its calibrated probabilities alone: the expected confusion counts,
and the AUC with each row counted as positive with its calibrated probability. It assumes the
calibration holds in the window: true under covariate shift only while the model's
probabilities stay as reliable there as on the holdout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from vigil.estimate.base import Estimate, Estimator, subsample
from vigil.estimate.metrics import classifier_metrics, expected_calibration_error
from vigil.tasks import Outputs

SE_DRAWS = 200
CALIBRATION_SPLITS = 5


def _isotonic(x: np.ndarray, y: np.ndarray):
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x, y)


def _folds(strata: np.ndarray, seed: int):
    """Stratified folds of the holdout, or None when a class is too rare to split."""
    from sklearn.model_selection import StratifiedKFold

    smallest = int(np.bincount(strata).min()) if len(strata) else 0
    splits = min(CALIBRATION_SPLITS, smallest)
    if splits < 2:
        return None
    folds = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    return list(folds.split(np.zeros((len(strata), 1)), strata))


def _calibration_helps(x: np.ndarray, y: np.ndarray, strata: np.ndarray, seed: int) -> bool:
    """Whether isotonic calibration of ``x`` lowers the ECE on held-out folds of the holdout."""
    folds = _folds(strata, seed)
    if folds is None:
        return False
    raw_ece, cal_ece = [], []
    for fit, test in folds:
        iso = _isotonic(x[fit], y[fit])
        raw_ece.append(expected_calibration_error(x[test], y[test]))
        cal_ece.append(expected_calibration_error(iso.predict(x[test]), y[test]))
    return float(np.mean(cal_ece)) < float(np.mean(raw_ece))


def normalised(raw: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Calibrated columns made a distribution again (two classes: the last column decides)."""
    k = raw.shape[1]
    if k == 2:
        out[:, 0] = 1.0 - out[:, 1]
        return out
    sums = out.sum(axis=1, keepdims=True)
    return np.where(sums > 0, out / np.where(sums > 0, sums, 1.0), 1.0 / k)


class ConfidenceBased(Estimator):
    """CBPE. State (JSON): per class the isotonic map or None, and the holdout's raw
    probabilities and label indices for the standard errors."""

    name = "cbpe"
    metrics = ("accuracy", "f1", "roc_auc")

    def raw_of(self, outputs: Outputs) -> np.ndarray:
        return outputs.proba

    def truth(self, labels: pd.Series, classes=None) -> np.ndarray:
        """Each label's index among the probability columns' classes."""
        index = {str(c): i for i, c in enumerate(classes)}
        return np.array([index[str(v)] for v in labels], dtype=int)

    def fit(self, raw, features, truth, seed):
        raw = np.clip(np.asarray(raw, dtype=float), 0.0, 1.0)
        truth = np.asarray(truth, dtype=int)
        k = raw.shape[1]
        calibration: list[dict | None] = [None] * k
        for c in [k - 1] if k == 2 else range(k):
            y = (truth == c).astype(float)
            if _calibration_helps(raw[:, c], y, truth, seed):
                iso = _isotonic(raw[:, c], y)
                calibration[c] = {
                    "x": np.round(iso.X_thresholds_, 6).tolist(),
                    "y": np.round(iso.y_thresholds_, 6).tolist(),
                }
        keep = subsample(len(truth), seed)
        state = {
            "method": self.name,
            "calibration": calibration,
            "holdout": {"proba": raw[keep].round(6).tolist(), "label": truth[keep].tolist()},
        }
        return state, None

    def rows_from_log(self, frame: pd.DataFrame, features: pd.DataFrame, classes) -> dict:
        """A logged window's probabilities (a ``{class: p}`` per row) in class order, and its
        model input (the estimators that look at the shift use it)."""
        keys = [str(c) for c in classes]
        proba = [[float(p.get(k, 0.0)) for k in keys] for p in frame["probabilities"]]
        return {"proba": np.asarray(proba, dtype=float).reshape(-1, len(keys)),
                "features": features}  # fmt: skip

    def calibrated(self, state: Mapping[str, Any], raw: np.ndarray) -> np.ndarray:
        out = raw.copy()
        for c, cal in enumerate(state["calibration"]):
            if cal is not None:
                out[:, c] = np.interp(raw[:, c], cal["x"], cal["y"])
        return normalised(raw, out)

    def estimate(self, state, model, rows: Mapping[str, Any]) -> Estimate:
        raw = np.asarray(rows["proba"], dtype=float)
        return Estimate(classifier_metrics(raw, self.calibrated(state, raw)))

    def draws(self, state, n: int, seed: int) -> tuple[list[dict], list[dict]]:
        """Realized and estimated metrics over bootstrap chunks of ``n`` holdout rows."""
        raw = np.asarray(state["holdout"]["proba"], dtype=float)
        labels = np.asarray(state["holdout"]["label"], dtype=int)
        onehot = np.eye(raw.shape[1])[labels]
        calibrated = self.calibrated(state, raw)
        rng = np.random.default_rng(seed)
        realized, estimated = [], []
        for _ in range(SE_DRAWS):
            idx = rng.integers(0, len(labels), n)
            realized.append(classifier_metrics(raw[idx], onehot[idx]))
            estimated.append(self.chunk_estimate(state, raw[idx], calibrated[idx]))
        return realized, estimated

    def chunk_estimate(self, state, raw: np.ndarray, calibrated: np.ndarray) -> dict:
        """The estimate on holdout rows from their raw and calibrated probabilities."""
        return classifier_metrics(raw, calibrated)


def cross_fitted(state: Mapping[str, Any], raw: np.ndarray, truth: np.ndarray, seed: int):
    """The holdout's calibrated probabilities, each row calibrated by maps fitted on the other
    folds (the classes ``state`` calibrates), so their errors are what a new row would see."""
    out = raw.copy()
    folds = _folds(truth, seed)
    calibrated = [c for c, cal in enumerate(state["calibration"]) if cal is not None]
    if folds is None or not calibrated:
        return ConfidenceBased().calibrated(state, raw)
    for fit, test in folds:
        for c in calibrated:
            iso = _isotonic(raw[fit, c], (truth[fit] == c).astype(float))
            out[test, c] = iso.predict(raw[test, c])
    return normalised(raw, out)
