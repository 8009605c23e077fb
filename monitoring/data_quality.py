"""Data quality per feature per window, against the reference, with drift's family-wise control.

Checks, each an exact one-sided test whose null is "the window comes from the reference's
distribution":

- ``missing``: the window's missing share against the reference's own share (Fisher's exact
  test on the 2x2 table of missing / present counts);
- ``out_of_range`` (numeric): values outside the training range. A fresh value from the
  training distribution falls outside the range of N training values with probability at
  most 2/(N+1) (exchangeability), N taken as the reference's rows (so the bound is loose,
  never too tight): an exact binomial test against that;
- ``unseen`` (categorical): categories never seen in training. Good-Turing bounds the chance
  of a new category by the share of categories seen once in the reference: a binomial test
  against (singletons + 1)/(N + 1);
- ``constant``: a column that stopped varying. Its p-value is the chance that all present
  window values coincide when drawn from the reference's value frequencies (sum of q_v^n);
- ``type`` (numeric): logged values that are not numbers; the service refuses them, so any
  is an anomaly (p-value 0).

Every test rejects at ``alpha / m`` (m: tests run in this window across features and checks,
Bonferroni), so on a clean window the chance that any feature is flagged is at most alpha.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vigil.schema import FeatureSchema

CHECKS = ("missing", "out_of_range", "unseen", "constant", "type")


@dataclass
class FeatureQuality:
    missing_share: float
    out_of_range_share: float | None  # numeric features only
    unseen_share: float | None  # categorical features only
    p_values: dict[str, float] = field(default_factory=dict)
    flagged_checks: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.flagged_checks)

    def to_dict(self) -> dict:
        return {
            "missing_share": self.missing_share,
            "out_of_range_share": self.out_of_range_share,
            "unseen_share": self.unseen_share,
            "flagged": self.flagged,
            "flagged_checks": list(self.flagged_checks),
            "p_values": {k: _round(v) for k, v in self.p_values.items()},
        }


def _round(p: float) -> float:
    return float(f"{p:.4g}")


def _fisher_greater(k: int, n: int, r: int, m: int) -> float:
    """P-value that the window's share k/n exceeds the reference's r/m (one-sided)."""
    from scipy.stats import fisher_exact

    if k == 0:
        return 1.0
    return float(fisher_exact([[k, n - k], [r, m - r]], alternative="greater").pvalue)


def _binom_greater(k: int, n: int, p0: float) -> float:
    from scipy.stats import binomtest

    if k == 0 or n == 0:
        return 1.0
    return float(binomtest(k, n, min(p0, 1.0), alternative="greater").pvalue)


def _constant_pvalue(reference: pd.Series, current: pd.Series) -> float | None:
    """Chance that ``len(current)`` reference draws all coincide; None when it does not apply
    (the window varies, fewer than two values, or the reference itself is constant)."""
    if len(current) < 2 or current.nunique() > 1 or reference.nunique() < 2:
        return None
    shares = reference.value_counts(normalize=True).to_numpy(dtype=float)
    # Sum of q^n, in logs so that tiny shares and large windows neither underflow nor overflow.
    logs = len(current) * np.log(shares)
    return float(min(1.0, math.exp(np.logaddexp.reduce(logs))))


def _type_errors(raw: pd.Series | None) -> int:
    if raw is None:
        return 0
    present = raw.dropna()
    return int(pd.to_numeric(present, errors="coerce").isna().sum())


def assess(
    schema: FeatureSchema,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    alpha: float,
    raw: pd.DataFrame | None = None,
) -> dict[str, FeatureQuality]:
    """Data quality of ``current`` (``to_frame`` of the window) against ``reference`` (the
    reference sample, same form); ``raw``: the window as logged, for the type check."""
    n, m = len(current), len(reference)
    results: dict[str, FeatureQuality] = {}
    for feature in schema.features:
        cur, ref = current[feature.name], reference[feature.name]
        present = cur.dropna()
        k_missing = int(cur.isna().sum())
        p = {"missing": _fisher_greater(k_missing, n, int(ref.isna().sum()), m)}
        out_of_range = unseen = None
        if feature.kind == "numeric":
            outside = _outside(present, feature.min, feature.max)
            out_of_range = round(outside / n, 6) if n else 0.0
            p["out_of_range"] = _binom_greater(outside, len(present), 2.0 / (m + 1))
            raw_col = raw[feature.name] if raw is not None and feature.name in raw else None
            p["type"] = 0.0 if _type_errors(raw_col) else 1.0
        else:
            known = set(feature.categories)
            new = int((~present.isin(known)).sum())
            unseen = round(new / n, 6) if n else 0.0
            singletons = int((ref.value_counts() == 1).sum())
            p["unseen"] = _binom_greater(new, len(present), (singletons + 1) / (m + 1))
        # Counted in every window, applicable or not, so that the correction is fixed.
        constant = _constant_pvalue(ref.dropna(), present)
        p["constant"] = 1.0 if constant is None else constant
        results[feature.name] = FeatureQuality(
            missing_share=round(k_missing / n, 6) if n else 0.0,
            out_of_range_share=out_of_range,
            unseen_share=unseen,
            p_values=p,
        )
    tests = sum(len(r.p_values) for r in results.values())
    threshold = alpha / max(tests, 1)
    for r in results.values():
        r.flagged_checks = [check for check, p in r.p_values.items() if p < threshold]
    return results


def _outside(values: pd.Series, low: float | None, high: float | None) -> int:
    array = values.to_numpy(dtype=float)
    below = array < low if low is not None else np.zeros(len(array), bool)
    above = array > high if high is not None else np.zeros(len(array), bool)
    return int((below | above).sum())


def flagged_features(results: dict[str, FeatureQuality]) -> list[str]:
    return [name for name, r in results.items() if r.flagged]
