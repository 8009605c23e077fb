"""Estimates corrected by importance weights between the reference and the window.

The fallback's estimate on the window (CBPE's calibrated probabilities, DLE's predicted
errors) plus its error on the holdout reweighted to look like the window: for each metric,
the holdout's realized value minus the fallback's expectation on the same rows, both under
the domain classifier's weights (``vigil.estimate.shift``). With no shift the weights are 1
and the correction is the fallback's in-distribution error, measured on rows whose
calibration was cross-fitted (so it is not zero by construction); under covariate shift it
is the fallback's error where the window's rows lie (doubly robust: right when either the
calibration or the weights are). The correction's standard error grows as the weights
concentrate on fewer reference rows, so the band widens with the distance to the reference.
"""

from __future__ import annotations

import numpy as np

from vigil.estimate.atc import above, fit_threshold, with_atc_accuracy
from vigil.estimate.base import Estimate, dump, subsample
from vigil.estimate.cbpe import ConfidenceBased, cross_fitted
from vigil.estimate.dle import DirectLoss
from vigil.estimate.metrics import classifier_metrics
from vigil.estimate.shift import Shift, reference_model, window_shift
from vigil.tasks import top_class

CORRECTION_DRAWS = 200


class ReweightedConfidence(ConfidenceBased):
    """CBPE plus the holdout's reweighted error. State: CBPE's, the holdout rows'
    cross-fitted calibrated probabilities and each metric's correction spread per row;
    artifact: the domain classifier's input map and the holdout rows through it."""

    name = "reweighted_cbpe"
    apply = True

    def fit(self, raw, features, truth, seed):
        state, _ = super().fit(raw, features, truth, seed)
        raw = np.clip(np.asarray(raw, dtype=float), 0.0, 1.0)
        truth = np.asarray(truth, dtype=int)
        keep = subsample(len(truth), seed)
        calibrated = cross_fitted(state, raw, truth, seed)[keep]
        state["holdout"]["calibrated"] = calibrated.round(6).tolist()
        onehot = np.eye(raw.shape[1])[truth[keep]]
        rng = np.random.default_rng(seed)
        diffs: dict[str, list[float]] = {m: [] for m in self.metrics}
        for _ in range(CORRECTION_DRAWS):
            idx = rng.integers(0, len(keep), len(keep))
            real = classifier_metrics(raw[keep][idx], onehot[idx])
            expected = classifier_metrics(raw[keep][idx], calibrated[idx])
            for m in self.metrics:
                if real[m] is not None and expected[m] is not None:
                    diffs[m].append(real[m] - expected[m])
        state["correction_sd"] = {
            m: float(np.std(d, ddof=1) * np.sqrt(len(keep))) if len(d) > 1 else None
            for m, d in diffs.items()
        }
        return state, dump(reference_model(features.reset_index(drop=True), keep))

    def estimate(self, state, model, rows) -> Estimate:
        return self.corrected(state, model, rows)[0]

    def corrected(self, state, model, rows) -> tuple[Estimate, Shift | None]:
        """The estimate with its corrections, and the shift they came from."""
        out = super().estimate(state, model, rows)
        shift = window_shift(model, rows)
        if shift is None:
            return out, None
        held = state["holdout"]
        raw = np.asarray(held["proba"], dtype=float)
        onehot = np.eye(raw.shape[1])[np.asarray(held["label"], dtype=int)]
        calibrated = np.asarray(held["calibrated"], dtype=float)
        real = classifier_metrics(raw, onehot, shift.weights)
        expected = classifier_metrics(raw, calibrated, shift.weights)
        spread = np.sqrt((shift.weights**2).sum()) / shift.weights.sum()
        for m in self.metrics:
            if out.values[m] is None or real[m] is None or expected[m] is None:
                continue
            sd = state.get("correction_sd", {}).get(m)
            se = None if sd is None else sd * spread
            _correct(out, m, real[m] - expected[m], se, shift, self.apply)
        out.support = shift.support()
        return out, shift


def _correct(
    out: Estimate, metric: str, correction: float, se: float | None, shift, apply: bool
) -> None:
    """Add the reweighted correction to ``metric``'s estimate (``apply``), with its standard
    error. Beyond the reference's support the clipped weights cannot be trusted: the estimate
    stays uncorrected and the band widens to take in the corrected value too. Not applied,
    the correction only sizes the band: the estimate's likely error where the window lies."""
    value = out.values[metric]
    if apply and shift.vouched:
        out.values[metric] = float(np.clip(value + correction, 0.0, 1.0))
        if se is not None:
            out.extra_se[metric] = float(se)
    else:
        out.extra_se[metric] = float(np.hypot(se or 0.0, correction))


class ReweightedThresholded(ReweightedConfidence):
    """Accuracy from ATC's threshold, corrected by the holdout's reweighted residual (whether
    a row was right minus whether it passed the threshold); F1 and ROC AUC as the reweighted
    CBPE's. State adds ATC's threshold."""

    name = "reweighted_atc"

    def chunk_estimate(self, state, raw, calibrated) -> dict:
        return with_atc_accuracy(super().chunk_estimate(state, raw, calibrated), state, raw)

    def fit(self, raw, features, truth, seed):
        state, blob = super().fit(raw, features, truth, seed)
        state["atc"] = fit_threshold(raw, truth)
        return state, blob

    def estimate(self, state, model, rows) -> Estimate:
        out, shift = self.corrected(state, model, rows)
        out.values["accuracy"] = float(above(rows["proba"], **state["atc"]).mean())
        out.extra_se.pop("accuracy", None)
        if shift is None:
            return out
        held = state["holdout"]
        raw = np.asarray(held["proba"], dtype=float)
        label = np.asarray(held["label"], dtype=int)
        residual = (top_class(raw) == label) - above(raw, **state["atc"])
        correction = float((shift.weights * residual).sum() / shift.weights.sum())
        _correct(out, "accuracy", correction, shift.weighted_se(residual), shift, self.apply)
        return out


class ReweightedLoss(DirectLoss):
    """DLE plus the holdout's reweighted error: the holdout's predicted errors are
    cross-fitted; the artifact adds the domain classifier's input map and the holdout rows."""

    name = "reweighted_dle"
    cross_fit = True
    apply = True

    def _artifact(self, models, features, keep) -> bytes:
        return dump({**models, **reference_model(features.reset_index(drop=True), keep)})

    def estimate(self, state, model, rows) -> Estimate:
        out = super().estimate(state, model, rows)
        shift = window_shift(model, rows)
        if shift is None:
            return out
        held = state["holdout"]
        error = np.asarray(held["error"], dtype=float)
        abs_residual = np.abs(error) - np.asarray(held["predicted_abs"], dtype=float)
        sq_residual = error**2 - np.asarray(held["predicted_sq"], dtype=float)
        w = shift.weights
        abs_correction = float((w * abs_residual).sum() / w.sum())
        msq = out.values["rmse"] ** 2
        mae_se = shift.weighted_se(abs_residual)
        sq_correction = float((w * sq_residual).sum() / w.sum())
        sq_se = shift.weighted_se(sq_residual)
        if self.apply and shift.vouched:
            out.values["mae"] = max(out.values["mae"] + abs_correction, 0.0)
            out.values["rmse"] = float(np.sqrt(max(msq + sq_correction, 0.0)))
            out.extra_se["mae"] = mae_se
            if out.values["rmse"] > 0:
                out.extra_se["rmse"] = sq_se / (2 * out.values["rmse"])
        else:
            out.extra_se["mae"] = float(np.hypot(mae_se, abs_correction))
            if out.values["rmse"] > 0:
                band = float(np.hypot(sq_se, sq_correction))
                out.extra_se["rmse"] = band / (2 * out.values["rmse"])
        out.support = shift.support()
        return out
