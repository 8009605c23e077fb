"""The standard error's shift term, calibrated on the reference's own splits.

An estimator fitted on the reference is right on average where the window looks like the
reference; the further the window lies from it, the larger the error can grow. The term is
``scale × distance`` (``Shift.distance``, from the domain classifier), with one scale per
metric measured at fit time on the holdout alone: the estimator is refitted on one half, and
its error measured on windows drawn from the other half, untilted and tilted along each
numeric feature (rows drawn with weights exp(±z): the covariate shifts the reference can
show without leaving its support), beside each window's distance from the first half. The
squared error the tilted windows add to the untilted ones' (their sampling and calibration
noise), over the squared distance they add, is the scale's square.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vigil.estimate.shift import importance_encoded

SPLITS = 3
TILTED_FEATURES = 6
# exp(TILT × (rank − ½)): the highest row drawn e^TILT times as often as the lowest.
TILT = 4.0
MIN_ROWS = 40

# refit(fit_rows) gives errors(window_rows) -> {metric: (estimate - realized, noise variance)}
Refit = Callable[[np.ndarray], Callable[[np.ndarray], dict[str, tuple[float, float]]]]


def shift_scales(
    encoded: np.ndarray, numeric: int, refit: Refit, metrics: tuple[str, ...], seed: int
) -> dict[str, float]:
    """Per metric, the standard error one unit of distance adds. ``encoded``: the holdout's
    rows through the domain classifier's input map, its first ``numeric`` columns the
    standardised numbers the tilts follow."""
    n = len(encoded)
    if n < MIN_ROWS:
        return {m: 0.0 for m in metrics}
    rng = np.random.default_rng(seed)
    ratios: dict[str, list[float]] = {m: [] for m in metrics}
    columns = range(min(numeric, TILTED_FEATURES))
    for _ in range(SPLITS):
        order = rng.permutation(n)
        fit, rest = order[: n // 2], order[n // 2 :]
        errors = refit(fit)
        for j in columns:
            if np.ptp(encoded[rest, j]) == 0:
                continue
            # tilted by rank, so a few outlying values do not draw the whole window
            rank = np.argsort(np.argsort(encoded[rest, j], kind="stable")) / max(len(rest) - 1, 1)
            for sign in (1.0, -1.0):
                p = np.exp(sign * TILT * (rank - 0.5))
                rows = rng.choice(rest, len(rest), p=p / p.sum())
                distance = importance_encoded(encoded[fit], encoded[rows]).distance
                if distance <= 0:
                    continue
                for m, (error, noise) in errors(rows).items():
                    ratios[m].append(max(error**2 - noise, 0.0) / distance**2)
    return {m: float(np.sqrt(np.median(r))) if r else 0.0 for m, r in ratios.items()}
