"""What every quality estimator declares (as NannyML's ``AbstractEstimator``): fit on labeled
reference rows the model never trained on, estimate on a window, and a state that serialises
(JSON for the contract, optional bytes for an artifact)."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from vigil.tasks import Outputs

# Holdout rows kept in the contract for the standard errors (probabilities or errors per row).
MAX_REFERENCE_ROWS = 2000


@dataclass
class Estimate:
    """One window's estimate: ``values`` per metric, the standard error the estimate adds on
    top of the window's sampling error (``extra_se``; a correction's own uncertainty), and what
    the estimator can say about the window's shift (``support``: None when it cannot tell)."""

    values: dict[str, float | None]
    extra_se: dict[str, float] = field(default_factory=dict)
    support: dict[str, Any] | None = None


class Estimator(ABC):
    """Stateless: ``fit`` returns the state (JSON) and the artifact (bytes or None) that
    ``estimate`` and ``draws`` take back, so one instance serves every model."""

    name: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]

    @abstractmethod
    def raw_of(self, outputs: Outputs) -> np.ndarray:
        """The model output the estimator works from (probabilities or predictions)."""

    @abstractmethod
    def truth(self, labels: pd.Series, classes=None) -> np.ndarray:
        """Labels in the form ``fit`` takes."""

    @abstractmethod
    def fit(
        self, raw: np.ndarray, features: pd.DataFrame, truth: np.ndarray, seed: int
    ) -> tuple[dict[str, Any], bytes | None]:
        """Fit on labeled reference rows: ``(state, artifact bytes or None)``."""

    @abstractmethod
    def rows_from_log(self, frame: pd.DataFrame, features: pd.DataFrame, classes) -> dict:
        """What ``estimate`` takes, from logged rows (``frame``) and their model input."""

    @abstractmethod
    def estimate(self, state: Mapping[str, Any], model: Any, rows: Mapping[str, Any]) -> Estimate:
        """A window's estimate (``model``: the loaded artifact, or None)."""

    @abstractmethod
    def draws(self, state: Mapping[str, Any], n: int, seed: int) -> tuple[list[dict], list[dict]]:
        """Realized and estimated metrics over bootstrap chunks of ``n`` reference rows."""


def subsample(n: int, seed: int) -> np.ndarray:
    """The reference rows a state keeps (all up to ``MAX_REFERENCE_ROWS``)."""
    if n <= MAX_REFERENCE_ROWS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_REFERENCE_ROWS, replace=False))


def dump(value: Any) -> bytes:
    """An artifact's bytes (joblib)."""
    import io

    import joblib

    buffer = io.BytesIO()
    joblib.dump(value, buffer)
    return buffer.getvalue()


@functools.cache
def thread_controller():
    """The process's BLAS and OpenMP thread pools, found once (finding them costs a few ms a
    call): the estimators' small products and error models ran many times slower with a
    thread per core on a busy machine, so they run on one."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()
