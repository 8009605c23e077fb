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

MAX_WEIGHT = 20.0
BEYOND_SHARE = 0.1
# Rows of each side the domain classifier is fitted on: it keeps a check's cost bounded.
MAX_FIT_ROWS = 1000
MAX_CATEGORIES = 20


def featurizer(features: pd.DataFrame):
    """A fitted map from model input to a numeric matrix: numbers imputed and scaled,
    categories one-hot (the ``MAX_CATEGORIES`` most frequent; unseen ones all zero)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    numeric = [c for c in features.columns if c not in categorical and features[c].notna().any()]
    one_hot = OneHotEncoder(
        handle_unknown="ignore", max_categories=MAX_CATEGORIES, sparse_output=False
    )
    encoder = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("cat", one_hot, categorical),
        ],
        sparse_threshold=0.0,
    )
    return encoder.fit(_as_text(features, categorical))


def _as_text(features: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Categories as strings, missing ones as their own category."""
    frame = features.copy()
    for c in categorical:
        frame[c] = frame[c].astype(object).where(frame[c].notna(), "__missing__").astype(str)
    return frame


def encode(fitted, features: pd.DataFrame) -> np.ndarray:
    categorical = next(cols for name, _, cols in fitted.transformers if name == "cat")
    return np.asarray(fitted.transform(_as_text(features, list(categorical))), dtype=float)


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

    def weighted_se(self, residual: np.ndarray) -> float:
        """Standard error of the weighted mean of ``residual`` over the reference rows."""
        w = self.weights
        mean = float((w * residual).sum() / w.sum())
        return float(np.sqrt((w**2 * (residual - mean) ** 2).sum()) / w.sum())


def importance(fitted, reference: np.ndarray, window: pd.DataFrame, seed: int = 0) -> Shift:
    """The reference rows' importance weights for ``window`` (model input), and its support."""
    from sklearn.linear_model import LogisticRegression

    current = encode(fitted, window)
    rng = np.random.default_rng(seed)
    ref_fit = reference[_rows(len(reference), rng)]
    win_fit = current[_rows(len(current), rng)]
    x = np.vstack([ref_fit, win_fit])
    y = np.r_[np.zeros(len(ref_fit)), np.ones(len(win_fit))]
    domain = LogisticRegression(C=0.5, max_iter=300).fit(x, y)
    ratio = len(ref_fit) / len(win_fit)
    odds_ref = np.exp(np.clip(domain.decision_function(reference), -30, 30)) * ratio
    odds_win = np.exp(np.clip(domain.decision_function(current), -30, 30)) * ratio
    scale = float(odds_ref.mean())
    weights = np.clip(odds_ref / scale, 0.0, MAX_WEIGHT)
    weights = weights / weights.mean()
    effective = float(weights.sum() ** 2 / (weights**2).sum())
    return Shift(weights, float(np.mean(odds_win / scale > MAX_WEIGHT)), effective)


def _rows(n: int, rng) -> np.ndarray:
    return np.arange(n) if n <= MAX_FIT_ROWS else rng.choice(n, MAX_FIT_ROWS, replace=False)
