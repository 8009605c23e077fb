"""The chosen estimators: a fallback's estimate with a standard error that knows its limits.

``atc_shift`` (classifiers): ATC's accuracy; CBPE's F1 and ROC AUC plus their in-distribution
offset (the holdout's realized value minus CBPE's expectation on the same rows, calibrated
across folds, so the offset is what a new row would see). ``dle_shift`` (regressors): DLE's
MAE and RMSE. Beside the sampling part (``QualityEstimator.standard_errors``) each adds, in
quadrature, the calibration's own uncertainty (a bootstrap over the holdout rows) and the
shift term of ``vigil.estimate.band``: its scale calibrated on the holdout's own splits, its
distance the domain classifier's between the reference and the window. The domain classifier
also says when the window lies beyond the reference's support (``Estimate.support``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vigil.estimate.atc import (
    AverageThresholdedConfidence,
    above,
    counted_above,
    fit_threshold,
    top_score,
)
from vigil.estimate.band import shift_scales
from vigil.estimate.base import Estimate, dump, subsample
from vigil.estimate.cbpe import ConfidenceBased, cross_fitted
from vigil.estimate.dle import DirectLoss, predicted_by, with_prediction
from vigil.estimate.metrics import classifier_metrics, regressor_metrics
from vigil.estimate.shift import reference_model, window_shift

CALIBRATION_DRAWS = 100
# Draws per window while the shift term is calibrated (about 40 windows at fit time).
NOISE_DRAWS = 20
OFFSET_METRICS = ("f1", "roc_auc")


def _offsets(raw: np.ndarray, truth: np.ndarray, seed: int, draws: int = 0):
    """CBPE's in-distribution offset per metric of ``OFFSET_METRICS`` (realized minus
    expected on the holdout, calibrated across folds), with its bootstrap standard error
    over ``draws`` resamples of the rows; and the CBPE state fitted on all of them."""
    state, _ = ConfidenceBased().fit(raw, None, truth, seed)
    calibrated = cross_fitted(state, raw, truth, seed)
    onehot = np.eye(raw.shape[1])[truth]

    def offset(idx) -> dict[str, float | None]:
        real = classifier_metrics(raw[idx], onehot[idx])
        expected = classifier_metrics(raw[idx], calibrated[idx])
        return {m: None if real[m] is None or expected[m] is None else real[m] - expected[m]
                for m in OFFSET_METRICS}  # fmt: skip

    found = offset(np.arange(len(truth)))
    rng = np.random.default_rng(seed)
    resampled = [offset(rng.integers(0, len(truth), len(truth))) for _ in range(draws)]
    se = {}
    for m in OFFSET_METRICS:
        values = [d[m] for d in resampled if d[m] is not None]
        se[m] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {m: v or 0.0 for m, v in found.items()}, se, state


def _classifier_refit(raw: np.ndarray, truth: np.ndarray, seed: int):
    """``band.Refit`` for ``atc_shift``: fitted on some holdout rows, its errors on others
    with the noise the other terms count there (sampling, and the calibration's bootstrap)."""
    onehot = np.eye(raw.shape[1])[truth]
    correct = (raw.argmax(axis=1) == truth).astype(float)
    rng = np.random.default_rng(seed)

    def refit(rows: np.ndarray):
        offsets, offset_se, state = _offsets(raw[rows], truth[rows], seed, draws=NOISE_DRAWS)
        passed = above(raw, **fit_threshold(raw[rows], truth[rows]))
        resampled = (rng.choice(rows, len(rows)) for _ in range(NOISE_DRAWS))
        drawn = np.array([above(raw, **fit_threshold(raw[i], truth[i])) for i in resampled])
        calibrated = ConfidenceBased().calibrated(state, raw)

        def found(window: np.ndarray) -> dict[str, float | None]:
            out = classifier_metrics(raw[window], calibrated[window])
            for m, c in offsets.items():
                out[m] = None if out[m] is None else out[m] + c
            return out

        def errors(window: np.ndarray) -> dict[str, tuple[float, float]]:
            real = classifier_metrics(raw[window], onehot[window])
            estimate = found(window)
            gaps = []
            for _ in range(NOISE_DRAWS):
                chunk = rng.choice(window, len(window))
                again, truly = found(chunk), classifier_metrics(raw[chunk], onehot[chunk])
                gaps.append({m: again[m] - truly[m] for m in OFFSET_METRICS
                             if again[m] is not None and truly[m] is not None})  # fmt: skip
            out = {}
            for m in OFFSET_METRICS:
                values = [g[m] for g in gaps if m in g]
                if estimate[m] is None or real[m] is None or len(values) < 2:
                    continue
                noise = float(np.var(values, ddof=1)) + offset_se[m] ** 2
                out[m] = (estimate[m] - real[m], noise)
            sampling = float(np.var(passed[window] - correct[window]) / len(window))
            calibration = float(np.var(drawn[:, window].mean(axis=1), ddof=1))
            out["accuracy"] = (passed[window].mean() - real["accuracy"], sampling + calibration)
            return out

        return errors

    return refit


class ThresholdedShiftAware(AverageThresholdedConfidence):
    """State: ATC's and CBPE's, the offsets and their standard errors, the thresholds of
    bootstrap resamples of the holdout, and the shift term's scale per metric. Artifact: the
    domain classifier's input map and the holdout rows through it."""

    name = "atc_shift"

    def fit(self, raw, features, truth, seed):
        state, _ = super().fit(raw, features, truth, seed)
        raw = np.clip(np.asarray(raw, dtype=float), 0.0, 1.0)
        truth = np.asarray(truth, dtype=int)
        keep = subsample(len(truth), seed)
        raw, truth = raw[keep], truth[keep]
        offsets, offset_se, _ = _offsets(raw, truth, seed, draws=CALIBRATION_DRAWS)
        rng = np.random.default_rng(seed)
        resamples = (rng.integers(0, len(truth), len(truth)) for _ in range(CALIBRATION_DRAWS))
        state["offset"], state["offset_se"] = offsets, offset_se
        state["atc_draws"] = [fit_threshold(raw[i], truth[i]) for i in resamples]
        model = reference_model(features.reset_index(drop=True), keep)
        numeric = len(model["featurizer"].numeric)
        refit = _classifier_refit(raw, truth, seed)
        encoded = np.asarray(model["reference"], dtype=float)
        state["shift_scale"] = shift_scales(encoded, numeric, refit, self.metrics, seed)
        return state, dump(model)

    def estimate(self, state, model, rows) -> Estimate:
        out = super().estimate(state, model, rows)
        for m, c in state.get("offset", {}).items():
            if out.values[m] is not None:
                out.values[m] = float(np.clip(out.values[m] + c, 0.0, 1.0))
        proba = np.asarray(rows["proba"], dtype=float)
        shares = _shares_above(proba, state.get("atc_draws", []))
        own = {**state.get("offset_se", {}),
               "accuracy": float(np.std(shares, ddof=1)) if len(shares) > 1 else 0.0}  # fmt: skip
        _band(out, own, state, window_shift(model, rows))
        return out

    def chunk_estimate(self, state, raw, calibrated) -> dict:
        found = super().chunk_estimate(state, raw, calibrated)
        for m, c in state.get("offset", {}).items():
            found[m] = None if found[m] is None else found[m] + c
        return found


def _shares_above(proba: np.ndarray, thresholds: list[dict[str, float]]) -> np.ndarray:
    """The window's share above each bootstrap threshold (``atc.above``, all at once)."""
    if not thresholds:
        return np.zeros(0)
    t = np.array([d["threshold"] for d in thresholds])[None, :]
    tie = np.array([d["tie_share"] for d in thresholds])[None, :]
    return counted_above(top_score(proba)[:, None], t, tie).mean(axis=0)


def _band(out: Estimate, own: Mapping[str, float], state: Mapping[str, Any], shift) -> None:
    """The calibration's uncertainty and the shift term, in quadrature, per metric."""
    scale = state.get("shift_scale", {})
    distance = 0.0 if shift is None else shift.distance
    for m in out.values:
        out.extra_se[m] = float(np.hypot(own.get(m, 0.0), scale.get(m, 0.0) * distance))
    if shift is not None:
        out.support = shift.support()


class LossShiftAware(DirectLoss):
    """DLE with the band. State adds the shift term's scale per metric; the holdout's
    predicted errors are cross-fitted, so their residuals give the calibration's uncertainty.
    Artifact: the error models, the domain classifier's input map and the holdout rows."""

    name = "dle_shift"
    cross_fit = True

    def fit(self, predictions, features, truth, seed):
        state, blob = super().fit(predictions, features, truth, seed)
        predictions = np.asarray(predictions, dtype=float).reshape(-1)
        error = predictions - np.asarray(truth, dtype=float)
        keep = subsample(len(error), seed)
        x = with_prediction(features, predictions).iloc[keep].reset_index(drop=True)
        error = error[keep]
        model = reference_model(features.reset_index(drop=True), keep)

        rng = np.random.default_rng(seed)

        def refit(rows: np.ndarray):
            models = self._fit_models(x.iloc[rows], error[rows], seed)
            predicted_abs, predicted_sq = predicted_by(models, x)
            own = _calibration_se(error[rows], predicted_abs[rows], predicted_sq[rows])

            def gap(window: np.ndarray) -> dict[str, float]:
                found = regressor_metrics(predicted_abs[window], predicted_sq[window])
                real = regressor_metrics(np.abs(error[window]), error[window] ** 2)
                return {m: found[m] - real[m] for m in self.metrics}

            def errors(window: np.ndarray) -> dict[str, tuple[float, float]]:
                gaps = [gap(rng.choice(window, len(window))) for _ in range(NOISE_DRAWS)]
                return {m: (gap(window)[m], float(np.var([g[m] for g in gaps], ddof=1))
                            + own[m] ** 2) for m in self.metrics}  # fmt: skip

            return errors

        encoded = np.asarray(model["reference"], dtype=float)
        numeric = len(model["featurizer"].numeric)
        state["shift_scale"] = shift_scales(encoded, numeric, refit, self.metrics, seed)
        return state, blob

    def _artifact(self, models, features, keep) -> bytes:
        return dump({**models, **reference_model(features.reset_index(drop=True), keep)})

    def estimate(self, state, model, rows) -> Estimate:
        out = super().estimate(state, model, rows)
        held = state["holdout"]
        own = _calibration_se(np.asarray(held["error"], dtype=float),
                              np.asarray(held["predicted_abs"], dtype=float),
                              np.asarray(held["predicted_sq"], dtype=float))  # fmt: skip
        _band(out, own, state, window_shift(model, rows))
        return out


def _calibration_se(error: np.ndarray, predicted_abs: np.ndarray, predicted_sq: np.ndarray):
    """The error models' own uncertainty: the standard error of their mean residual on the
    holdout (for RMSE through the square root, at the holdout's own RMSE)."""
    n = max(len(error), 1)
    rmse = float(np.sqrt(np.mean(error**2))) if len(error) else 0.0
    sq = float(np.std(error**2 - predicted_sq) / np.sqrt(n))
    return {
        "mae": float(np.std(np.abs(error) - predicted_abs) / np.sqrt(n)),
        "rmse": sq / (2 * rmse) if rmse > 0 else 0.0,
    }
