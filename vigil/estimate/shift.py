"""How a window differs from the reference, seen by a domain classifier.

A logistic regression told apart the reference rows (the holdout the estimators were fitted
on) and the window's rows; its odds on a reference row are that row's importance weight, how
much more common rows like it are in the window (clipped at ``MAX_WEIGHT``, then scaled to
mean 1). The weights turn any reference average into the window's, as far as the window stays
inside the reference's support. Window rows whose odds pass the clip lie where the reference
has (almost) no rows: no reference average speaks for them, and when more than
``BEYOND_SHARE`` of the window is there the estimate is outside what it can vouch for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vigil.estimate.base import thread_controller

MAX_WEIGHT = 20.0
BEYOND_SHARE = 0.1
# Rows of each side the domain classifier is fitted on: it keeps a check's cost bounded.
MAX_FIT_ROWS = 1000
MAX_CATEGORIES = 20


@dataclass
class Featurizer:
    """Model input to a numeric matrix: numbers with missing values at the median, scaled;
    categories one-hot (the ``MAX_CATEGORIES`` most frequent; others and unseen ones all
    zero). Plain numpy: a check encodes every window, and a column transformer cost 25 ms."""

    numeric: dict[str, tuple[float, float, float]]  # column -> (median, mean, sd)
    categorical: dict[str, list[str]]

    def encode(self, features: pd.DataFrame) -> np.ndarray:
        parts = []
        for c, (median, mean, sd) in self.numeric.items():
            column = features[c]
            if pd.api.types.is_numeric_dtype(column):  # to_numeric cost 0.3 ms a column
                x = column.to_numpy(dtype=float, na_value=np.nan)
            else:
                x = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
            parts.append(((np.where(np.isfinite(x), x, median) - mean) / sd)[:, None])
        for c, levels in self.categorical.items():
            text = _as_text(features[c])
            parts.append((text[:, None] == np.asarray(levels, dtype=object)[None, :]).astype(float))
        return np.hstack(parts) if parts else np.zeros((len(features), 0))


def _as_text(column: pd.Series) -> np.ndarray:
    return column.astype(object).where(column.notna(), "__missing__").astype(str).to_numpy()


def featurizer(features: pd.DataFrame) -> Featurizer:
    numeric, categorical = {}, {}
    for c in features.columns:
        if pd.api.types.is_numeric_dtype(features[c]):
            x = pd.to_numeric(features[c], errors="coerce").to_numpy(dtype=float)
            x = x[np.isfinite(x)]
            if len(x):
                sd = float(x.std()) or 1.0
                numeric[c] = (float(np.median(x)), float(x.mean()), sd)
        else:
            counts = pd.Series(_as_text(features[c])).value_counts()
            categorical[c] = [str(v) for v in counts.index[:MAX_CATEGORIES]]
    return Featurizer(numeric, categorical)


def encode(fitted: Featurizer, features: pd.DataFrame) -> np.ndarray:
    return fitted.encode(features)


def reference_model(features: pd.DataFrame, keep: np.ndarray) -> dict[str, Any]:
    """What a check needs to weigh a window against the reference (an estimator's artifact):
    the input map, and the kept reference rows through it."""
    fitted = featurizer(features)
    reference = encode(fitted, features.iloc[keep]).astype(np.float32)
    return {"featurizer": fitted, "reference": reference}


def window_shift(model: Any, rows) -> Shift | None:
    """The window's shift from the reference held in ``model`` (None without one, or without
    the window's model input)."""
    features = rows.get("features")
    if not isinstance(model, dict) or "featurizer" not in model or features is None:
        return None
    if len(features) == 0:
        return None
    return importance(model["featurizer"], np.asarray(model["reference"], float), features)


@dataclass
class Shift:
    weights: np.ndarray  # per reference row, mean 1
    beyond_share: float  # window rows outside the reference's support
    effective_rows: float  # the reference rows the weighted averages rest on (Kish)

    @property
    def vouched(self) -> bool:
        return self.beyond_share <= BEYOND_SHARE

    def support(self) -> dict[str, Any]:
        return {
            "vouched": self.vouched,
            "beyond_support_share": round(self.beyond_share, 4),
            "effective_reference_rows": round(self.effective_rows, 1),
            "reference_rows": len(self.weights),
        }

    @property
    def distance(self) -> float:
        """How far the window lies from the reference, from 0 (every reference row weighs
        the same) towards 1: the share of the reference rows the weights set aside (one minus
        the effective rows over the rows). Bounded, unlike the weights' divergence, so a
        window far outside the reference does not blow the band up without limit."""
        return float(max(1.0 - self.effective_rows / len(self.weights), 0.0))

    def weighted_se(self, residual: np.ndarray) -> float:
        """Standard error of the weighted mean of ``residual`` over the reference rows."""
        w = self.weights
        mean = float((w * residual).sum() / w.sum())
        return float(np.sqrt((w**2 * (residual - mean) ** 2).sum()) / w.sum())


def importance(fitted, reference: np.ndarray, window: pd.DataFrame, seed: int = 0) -> Shift:
    """The reference rows' importance weights for ``window`` (model input), and its support."""
    return importance_encoded(reference, encode(fitted, window), seed)


def importance_encoded(reference: np.ndarray, current: np.ndarray, seed: int = 0) -> Shift:
    """As ``importance``, from the window's rows already encoded."""
    rng = np.random.default_rng(seed)
    ref_fit = reference[_rows(len(reference), rng)]
    win_fit = current[_rows(len(current), rng)]
    x = np.vstack([ref_fit, win_fit])
    y = np.r_[np.zeros(len(ref_fit)), np.ones(len(win_fit))]
    with thread_controller().limit(limits=1, user_api="blas"):
        coef = _logistic(x, y)
    ratio = len(ref_fit) / len(win_fit)
    odds_ref = np.exp(np.clip(_logit(reference, coef), -30, 30)) * ratio
    odds_win = np.exp(np.clip(_logit(current, coef), -30, 30)) * ratio
    scale = float(odds_ref.mean())
    weights = np.clip(odds_ref / scale, 0.0, MAX_WEIGHT)
    weights = weights / weights.mean()
    effective = float(weights.sum() ** 2 / (weights**2).sum())
    return Shift(weights, float(np.mean(odds_win / scale > MAX_WEIGHT)), effective)


def _logit(x: np.ndarray, coef: np.ndarray) -> np.ndarray:
    return x @ coef[1:] + coef[0]


def _logistic(x: np.ndarray, y: np.ndarray, penalty: float = 2.0, steps: int = 25) -> np.ndarray:
    """L2-penalised logistic regression by Newton's method (intercept unpenalised): a few
    steps on a small dense problem, without scikit-learn's per-call overhead (a check fits
    one per window)."""
    design = np.c_[np.ones(len(x)), x]
    coef = np.zeros(design.shape[1])
    ridge = np.full(design.shape[1], penalty)
    ridge[0] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ coef, -30, 30)))
        gradient = design.T @ (p - y) + ridge * coef
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(ridge + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        coef -= step
        if np.abs(step).max() < 1e-6:
            break
    return coef


def _rows(n: int, rng) -> np.ndarray:
    return np.arange(n) if n <= MAX_FIT_ROWS else rng.choice(n, MAX_FIT_ROWS, replace=False)
