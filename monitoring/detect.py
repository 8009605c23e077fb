"""The drift statistics: one fixed p-value test per feature, Bonferroni across features.

The method depends only on the feature's kind, never on sample sizes, so a score means the same
thing from one check to the next: two-sample Kolmogorov-Smirnov for numeric features, Pearson's
chi-square test of homogeneity for categorical ones. Each test rejects at ``alpha / m`` (``m``
features), so on a window without drift the chance that any feature is flagged is at most
``alpha``. The Evidently report calls the same functions (``monitoring.report``), so the HTML
shows the scores and verdicts computed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vigil.schema import FeatureSchema

KS = "ks"
CHISQUARE = "chisquare"
P_VALUE = "p_value"
# Categories expected fewer times than this in either sample are pooled into one bin: the
# chi-square approximation overstates significance for sparse cells, and a tiny corrected
# threshold sits exactly in the tail where that error is largest.
MIN_EXPECTED = 5.0


@dataclass(frozen=True)
class FeatureDrift:
    method: str
    score: float | None  # None: the feature could not be tested (see ``note``)
    threshold: float
    drifted: bool
    missing_share: float
    score_kind: str = P_VALUE
    note: str | None = None

    def to_dict(self) -> dict:
        out = {
            "method": self.method,
            "score_kind": self.score_kind,
            "score": self.score,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "missing_share": self.missing_share,
        }
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class PredictionDrift:
    score: float
    threshold: float
    drifted: bool
    method: str = CHISQUARE
    score_kind: str = P_VALUE

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "score_kind": self.score_kind,
            "score": self.score,
            "threshold": self.threshold,
            "drifted": self.drifted,
        }


@dataclass(frozen=True)
class Detection:
    features: dict[str, FeatureDrift]
    drift_share: float
    drift_detected: bool
    prediction: PredictionDrift | None
    alpha: float
    tested: list[str] = field(default_factory=list)  # features with a score (Evidently gets them)

    @property
    def drifted_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f.drifted]


def method_for(kind: str) -> str:
    return KS if kind == "numeric" else CHISQUARE


def ks_pvalue(reference: np.ndarray, current: np.ndarray) -> float:
    from scipy.stats import ks_2samp

    return float(ks_2samp(reference, current).pvalue)


def chisquare_pvalue(reference: pd.Series, current: pd.Series) -> float:
    """Homogeneity of two samples' category counts; a category seen in one sample only is a
    valid cell (its expected count comes from the pooled total), not a division by zero."""
    from scipy.stats import chi2

    counts = pd.concat(
        [reference.astype(str).value_counts(), current.astype(str).value_counts()],
        axis=1,
        keys=["ref", "cur"],
    ).fillna(0.0)
    table = counts.to_numpy(dtype=float).T  # 2 x k
    table = _pool_sparse(table)
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    return float(chi2.sf(stat, df=table.shape[1] - 1))


def _sparse(table: np.ndarray) -> np.ndarray:
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / max(table.sum(), 1.0)
    return (expected < MIN_EXPECTED).any(axis=0)


def _pool_sparse(table: np.ndarray) -> np.ndarray:
    sparse = _sparse(table)
    if not sparse.any():
        return table
    pooled = table[:, sparse].sum(axis=1, keepdims=True)
    rest = table[:, ~sparse]
    if _sparse(np.hstack([rest, pooled]))[-1] and rest.shape[1] > 1:
        # Still sparse: fold it into the smallest category rather than keep a noisy cell.
        smallest = int(rest.sum(axis=0).argmin())
        rest = rest.copy()
        rest[:, smallest] += pooled[:, 0]
        return rest
    return np.hstack([rest, pooled])


def pvalue_by_method(method: str, reference: pd.Series, current: pd.Series) -> float:
    """p-value of "same distribution" by the named test (a model task's prediction test)."""
    if method == KS:
        return ks_pvalue(reference.to_numpy(dtype=float), current.to_numpy(dtype=float))
    return chisquare_pvalue(reference.astype(str), current.astype(str))


def column_pvalue(kind: str, reference: pd.Series, current: pd.Series) -> float:
    """p-value of "same distribution"; both series without missing values."""
    if kind == "numeric":
        return ks_pvalue(reference.to_numpy(dtype=float), current.to_numpy(dtype=float))
    return chisquare_pvalue(reference, current)


def feature_drift(
    kind: str, reference: pd.Series, current: pd.Series, threshold: float
) -> FeatureDrift:
    method = method_for(kind)
    if kind == "numeric":  # infinities are missing values here, as in Evidently
        ref_values = reference.to_numpy(dtype=float, na_value=np.nan)
        cur_values = current.to_numpy(dtype=float, na_value=np.nan)
        cur_ok = np.isfinite(cur_values)
        missing = float((~cur_ok).mean()) if len(cur_values) else 0.0
        ref, cur = ref_values[np.isfinite(ref_values)], cur_values[cur_ok]
    else:
        missing = float(current.isna().mean()) if len(current) else 0.0
        ref, cur = reference.dropna(), current.dropna()
    if len(cur) == 0 or len(ref) == 0:
        # Nothing to test. Values that vanished (or appeared) are a change in themselves.
        if len(cur) == 0 and len(ref) == 0:
            note, drifted = "all values missing in the reference and the window", False
        elif len(cur) == 0:
            note, drifted = "all values missing in the window", True
        else:
            note, drifted = "all values missing in the reference", True
        return FeatureDrift(method, None, threshold, drifted, missing, note=note)
    score = ks_pvalue(ref, cur) if kind == "numeric" else chisquare_pvalue(ref, cur)
    return FeatureDrift(method, score, threshold, score < threshold, missing)


def detect(
    schema: FeatureSchema,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    alpha: float,
    share: float,
    reference_predictions: pd.Series | None = None,
    current_predictions: pd.Series | None = None,
    prediction_method: str = CHISQUARE,
) -> Detection:
    """Test every feature of ``schema`` in ``current`` against ``reference`` (both as made by
    ``vigil.schema.to_frame``); predictions are compared at ``alpha`` (a single test) by
    ``prediction_method``, the model task's (chi-square of classes, KS of numbers)."""
    m = len(schema.features)
    threshold = alpha / m
    features = {
        f.name: feature_drift(f.kind, reference[f.name], current[f.name], threshold)
        for f in schema.features
    }
    drifted = sum(f.drifted for f in features.values())
    prediction = None
    if reference_predictions is not None and current_predictions is not None:
        ref_pred = reference_predictions.dropna()
        cur_pred = current_predictions.dropna()
        if len(ref_pred) and len(cur_pred):
            p = pvalue_by_method(prediction_method, ref_pred, cur_pred)
            prediction = PredictionDrift(
                score=p, threshold=alpha, drifted=p < alpha, method=prediction_method
            )
    return Detection(
        features=features,
        drift_share=round(drifted / m, 4),
        drift_detected=drifted / m >= share,
        prediction=prediction,
        alpha=alpha,
        tested=[name for name, f in features.items() if f.score is not None],
    )
