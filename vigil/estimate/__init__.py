"""Quality estimated without labels: one module per estimator, the task names its own.

- ``base``: the declared interface (``Estimator``: fit on labeled reference rows, estimate on
  a window, a serialisable state) and ``Estimate``.
- ``cbpe`` and ``dle``: confidence-based estimation and direct loss estimation (NannyML's
  CBPE and DLE), the fallbacks; ``atc`` and ``doc``: accuracy from thresholded confidence and
  from the difference of confidences; ``reweighted``: the fallbacks corrected by importance
  weights between the reference and the window (``shift``: the domain classifier).
- ``quality``: what training fits and stores and what the monitor applies.
docs/estimates.md explains the methods and their evaluation.
"""

from vigil.lazy import lazy_exports

_EXPORTS = {
    "Estimate": ".base",
    "Estimator": ".base",
    "classifier_metrics": ".metrics",
    "expected_calibration_error": ".metrics",
    "regressor_metrics": ".metrics",
    "ARTIFACT": ".quality",
    "CONTRACT_KEY": ".quality",
    "ESTIMATORS": ".quality",
    "QualityEstimator": ".quality",
    "estimated_drop": ".quality",
    "estimator_for": ".quality",
    "estimator_named": ".quality",
    "fit_quality_estimators": ".quality",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
