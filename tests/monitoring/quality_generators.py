"""Data where the truth is known, for the quality estimates: one generator per task, with
the three cases of the evaluation (issue 20).

- ``"none"``: the training distribution;
- ``"covariate"``: inputs shift inside the training support (an irrelevant feature and the
  category mix move, a relevant feature a little), P(y|x) unchanged;
- ``"beyond"``: the same kind of shift, but pushing an irrelevant feature outside the training
  range (where the model extrapolates and no holdout row shows its errors);
- ``"worse"``: inputs shift into a region where the model is worse (classifier: towards the
  decision boundary; regressor: where the noise is larger). P(y|x) still unchanged, so the
  estimate should see it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CASES = ("none", "covariate", "beyond", "worse")
GROUPS = (["a", "b", "c"], [0.5, 0.3, 0.2])


def _features(n: int, rng: np.random.Generator, case: str) -> pd.DataFrame:
    x1 = rng.normal(0.0, 1.0, n)
    x2 = rng.normal(0.0, 1.0, n)
    x3 = rng.normal(0.0, 1.0, n)
    x4 = rng.normal(0.0, 1.0, n)
    groups = GROUPS[1]
    if case == "covariate":
        x4 = x4 * 0.8 + 0.8
        x1 = x1 + 0.4
        groups = [0.2, 0.3, 0.5]
    elif case == "beyond":
        x4 = x4 * 1.5 + 1.5
        x1 = x1 + 0.4
    elif case == "worse":
        x1 = rng.normal(0.0, 0.3, n)
        x2 = rng.normal(0.0, 0.3, n)
        x3 = rng.normal(1.6, 0.6, n)
    elif case != "none":
        raise ValueError(f"unknown case {case!r}; expected one of {CASES}")
    group = rng.choice(GROUPS[0], size=n, p=groups)
    return pd.DataFrame({"x1": x1, "x2": x2, "x3": x3, "x4": x4, "group": group.astype(object)})


def classification_frame(n: int, seed: int, case: str = "none") -> pd.DataFrame:
    """Features plus a binary ``target`` drawn from a logistic P(y|x) on x1, x2 and group."""
    rng = np.random.default_rng(seed)
    frame = _features(n, rng, case)
    logit = 2.0 * frame["x1"] - 1.5 * frame["x2"] + np.where(frame["group"] == "b", 0.8, 0.0)
    frame["target"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return frame


def regression_frame(n: int, seed: int, case: str = "none") -> pd.DataFrame:
    """Features plus a numeric ``target``: a smooth mean in x1, x2 and group, with noise whose
    scale grows with |x3| (so where x3 is large, every model is worse)."""
    rng = np.random.default_rng(seed)
    frame = _features(n, rng, case)
    mean = 3.0 * frame["x1"] + 2.0 * np.sin(2.0 * frame["x2"])
    mean = mean + np.where(frame["group"] == "c", 1.0, 0.0)
    scale = 0.3 + 1.2 * np.abs(frame["x3"])
    frame["target"] = mean + rng.normal(0.0, 1.0, n) * scale
    return frame


def inject_nulls(frame: pd.DataFrame, column: str, share: float, seed: int) -> pd.DataFrame:
    """A copy with ``share`` of ``column`` set missing at random."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    out.loc[rng.random(len(out)) < share, column] = np.nan
    return out
