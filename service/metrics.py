"""The service's own Prometheus metrics; names and labels are part of the contract.

Created inside each worker (never at import): under ``bentoml serve`` prometheus_client runs in
multiprocess mode, every worker writes its own files and ``/metrics`` sums them. Unit tests pass
a fresh ``CollectorRegistry``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Bounded label values for vigil_input_rejected_total{reason}.
REJECT_REASONS = (
    "malformed",
    "missing_field",
    "unknown_field",
    "wrong_type",
    "non_finite",
    "out_of_range",
    "category_too_long",
    "empty",
    "too_many_rows",
    "body_too_large",
    "unseen_category",
    "unknown_label",
    "unauthorized",
)
# Bounded label values for vigil_requests_shed_total{reason}.
SHED_REASONS = ("in_flight", "queued_rows")
CONFIDENCE_BUCKETS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


class ServiceMetrics:
    def __init__(
        self, registry: CollectorRegistry | None, model_version: str, runtime: str = "sklearn"
    ):
        self.model_version = model_version
        self.runtime = runtime
        self.model_info = Gauge(
            "vigil_model_info",
            "1 for the model version this worker serves, and the runtime serving it",
            ["model_version", "runtime"],
            registry=registry,
            # No pid label, and a dead worker's value does not linger.
            multiprocess_mode="livemax",
        )
        self.served = Gauge(
            "vigil_model_served_info",
            "1 for the model version this worker serves (compared with production by alerts)",
            ["model_version"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.predictions = Counter(
            "vigil_predictions",
            # An empty label is no label in PromQL: a regressor's series have none.
            "Instances predicted (not requests), by predicted class (classifiers)",
            ["model_version", "predicted_class"],
            registry=registry,
        )
        self._registry = registry
        # vigil_prediction_value: one histogram per regressor version, its buckets taken from
        # that model's reference predictions (``value_buckets``).
        self._values: dict[str, Histogram] = {}
        self.confidence = Histogram(
            "vigil_prediction_confidence",
            "Probability of the predicted (top) class, per instance",
            ["model_version"],
            buckets=CONFIDENCE_BUCKETS,
            registry=registry,
        )
        self.rejected = Counter(
            "vigil_input_rejected",
            "Requests rejected with a 4xx, by reason",
            ["reason"],
            registry=registry,
        )
        self.unseen = Counter(
            "vigil_unseen_category",
            "Instances with a category never seen in training, by feature",
            ["feature"],
            registry=registry,
        )
        self.log_rows = Counter(
            "vigil_inference_log_rows", "Instances written to the inference log", registry=registry
        )
        self.log_failures = Counter(
            "vigil_inference_log_failures",
            "Instances that could not be logged (answered 503)",
            registry=registry,
        )
        self.feedback = Counter(
            "vigil_feedback_labels", "Ground-truth labels accepted", registry=registry
        )
        self.shed = Counter(
            "vigil_requests_shed",
            "Requests answered 503 + Retry-After because the worker was at its bound",
            ["reason"],
            registry=registry,
        )
        self.abandoned = Counter(
            "vigil_requests_abandoned",
            "Requests whose caller left before their batch ran: dropped, not predicted or logged",
            registry=registry,
        )
        self.unseen_folded = Counter(
            "vigil_unseen_category_folded",
            "Instances whose unseen category was logged as __other__ "
            "(past VIGIL_MAX_UNSEEN_CATEGORIES distinct values in the window), by feature",
            ["feature"],
            registry=registry,
        )
        self.candidate_info = Gauge(
            "vigil_candidate_info",
            "Workers running this candidate (shadow or canary) and how: 1 per worker, summed",
            ["candidate_version", "mode"],
            registry=registry,
            # Summed over live workers: equal to the worker count once every one follows.
            multiprocess_mode="livesum",
        )
        self._candidate: tuple[str, str] | None = None
        self.shadow_rows = Counter(
            "vigil_shadow_rows",
            "Answered instances also scored by the model that did not answer (shadow or canary)",
            registry=registry,
        )
        self.shadow_skipped = Counter(
            "vigil_shadow_skipped_rows",
            "Answered instances not scored by the other model: its queue was full",
            registry=registry,
        )
        self.candidate_failures = Counter(
            "vigil_candidate_failures",
            "Candidate failures (serving unaffected), by stage: load, predict, log (rows)",
            ["candidate_version", "stage"],
            registry=registry,
        )
        self.model_info.labels(model_version=model_version, runtime=runtime).set(1)
        self.served.labels(model_version=model_version).set(1)
        for reason in SHED_REASONS:
            self.shed.labels(reason=reason)
        # Present from the start, so rate() and alerts see a zero rather than nothing.
        for reason in REJECT_REASONS:
            self.rejected.labels(reason=reason)

    def serving(self, model_version: str, runtime: str | None = None) -> None:
        """A rollout: the old version's info goes to 0 (not away: livemax would keep a stale 1
        from this worker's file), the new one to 1."""
        runtime = runtime or self.runtime
        if (model_version, runtime) != (self.model_version, self.runtime):
            self.model_info.labels(model_version=self.model_version, runtime=self.runtime).set(0)
        if model_version != self.model_version:
            self.served.labels(model_version=self.model_version).set(0)
        self.model_info.labels(model_version=model_version, runtime=runtime).set(1)
        self.served.labels(model_version=model_version).set(1)
        self.model_version, self.runtime = model_version, runtime

    def running_candidate(self, version: str | None, mode: str | None) -> None:
        """The candidate this worker runs now (None: none); the previous one goes to 0."""
        now = (version, mode) if version and mode else None
        if self._candidate is not None and self._candidate != now:
            self.candidate_info.labels(*self._candidate).set(0)
        if now is not None:
            self.candidate_info.labels(*now).set(1)
        self._candidate = now

    def candidate_failure(self, version: str, stage: str, rows: int) -> None:
        """A load counts 1; a predict or log failure counts its rows."""
        self.candidate_failures.labels(candidate_version=version, stage=stage).inc(max(rows, 1))

    def reject(self, reason: str) -> None:
        self.rejected.labels(reason=reason if reason in REJECT_REASONS else "malformed").inc()

    def value_buckets(self, model_version: str, bounds: Sequence[float]) -> None:
        """Make ``vigil_prediction_value`` for a regressor version (no-op without bounds).

        Only the first is registered in ``registry``: a registry takes a name once. Under
        ``bentoml serve`` every version's values are in the multiprocess files regardless."""
        if not bounds or model_version in self._values:
            return
        registry = self._registry if not self._values else None
        histogram = Histogram(
            "vigil_prediction_value",
            "A regressor's predicted values, per instance (buckets from its reference)",
            ["model_version"],
            buckets=sorted(set(bounds)),
            registry=registry,
        )
        self._values[model_version] = histogram

    def values_predicted(self, values: Sequence[float], version: str) -> None:
        """Count a regressor's batch: one ``inc`` of ``vigil_predictions_total`` and the
        values into its ``vigil_prediction_value``."""
        self.predictions.labels(model_version=version, predicted_class="").inc(len(values))
        if (histogram := self._values.get(version)) is not None:
            observe_many(histogram.labels(model_version=version), values)

    def classes_predicted(
        self,
        classes: Sequence[str],
        top: np.ndarray,
        confidence: np.ndarray,
        model_version: str | None = None,
    ) -> None:
        """Count a batch: ``top[i]`` is the index in ``classes`` of instance ``i``'s predicted
        class, ``confidence[i]`` that class's probability. One ``inc`` per class and one per
        histogram bucket, not per instance. Counted under the version that answered (during a
        rollout the old model still finishes its batches after ``serving`` moved on)."""
        version = model_version or self.model_version
        counts = np.bincount(np.asarray(top, dtype=np.int64), minlength=len(classes))
        for label, n in zip(classes, counts.tolist(), strict=False):
            if n:
                self.predictions.labels(model_version=version, predicted_class=label).inc(n)
        observe_many(self.confidence.labels(model_version=version), confidence)

    def unseen_categories(self, counts: dict[str, int]) -> None:
        for feature, n in counts.items():
            self.unseen.labels(feature=feature).inc(n)

    def unseen_folded_categories(self, counts: dict[str, int]) -> None:
        for feature, n in counts.items():
            self.unseen_folded.labels(feature=feature).inc(n)

    def shed_request(self, reason: str) -> None:
        self.shed.labels(reason=reason if reason in SHED_REASONS else "in_flight").inc()


class LoadFailureMetrics:
    """Failed loads of a model (at start or at a rollout), by bounded reason; made when the
    worker starts, before any model is loaded."""

    def __init__(self, registry: CollectorRegistry | None):
        self.failures = Counter(
            "vigil_model_load_failures",
            "Loads of a model version that failed (the worker keeps what it served), by reason",
            ["model_version", "reason"],
            registry=registry,
        )

    def record(self, model_version: str, exc: BaseException) -> str:
        from vigil.servable import LOAD_FAILURE_REASONS, failure_reason

        reason = failure_reason(exc)
        reason = reason if reason in LOAD_FAILURE_REASONS else "other"
        self.failures.labels(model_version=model_version, reason=reason).inc()
        return reason


def observe_many(histogram, values: Sequence[float]) -> None:
    """``observe`` for a whole batch: one update per bucket instead of two per value (each one
    a write to the multiprocess file). Uses prometheus_client 0.26's histogram internals
    (``_upper_bounds``, ``_buckets``, ``_sum``); falls back to ``observe`` without them."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(buckets) != len(bounds):
        for value in values:
            histogram.observe(value)
        return
    if len(values) == 0:
        return
    array = np.asarray(values, dtype="float64")
    # observe() puts a value in the first bucket whose bound is >= it (le semantics).
    counts = np.bincount(np.searchsorted(bounds, array, side="left"), minlength=len(bounds))
    total.inc(float(array.sum()))
    for bucket, count in zip(buckets, counts.tolist(), strict=False):
        if count:
            bucket.inc(count)


UNKNOWN_PATH = "/__unknown__"
_REAL_PATH = "vigil.real_path"


def endpoint_label(path: str, known: frozenset[str], prefixes: tuple[str, ...]) -> str:
    """The ``endpoint`` label value of a request path: a known path as is, anything under one
    of ``prefixes`` as ``<prefix>*``, everything else as ``UNKNOWN_PATH``."""
    if path in known:
        return path
    for prefix in prefixes:
        if path.startswith(prefix):
            return f"{prefix}*"
    return UNKNOWN_PATH


def bound_endpoint_labels(known: frozenset[str], prefixes: tuple[str, ...] = ()) -> None:
    """Keep scanners from minting one ``endpoint`` series per path they try.

    BentoML labels ``bentoml_service_request_*`` with the raw request path, in a middleware that
    runs before any of ours. That middleware is shown the bounded label value as the path; the
    app behind it gets the real path back, so routing (a 404, a static file) is unchanged.
    Patches BentoML 1.4's middleware class once per process; without that class (another
    BentoML) this does nothing.
    """
    try:
        from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware
    except ImportError:  # pragma: no cover - a BentoML without it
        return
    if getattr(RunnerTrafficMetricsMiddleware, "_vigil_bounded", False):
        return
    original = RunnerTrafficMetricsMiddleware.__call__

    async def bounded(self, scope, receive, send):
        if scope["type"] == "http" and not hasattr(self, "_vigil_inner"):
            self._vigil_inner = self.app
            self.app = _restore_path(self._vigil_inner)
        path = scope.get("path", "")
        label = endpoint_label(path, known, prefixes) if scope["type"] == "http" else path
        if label != path:
            scope = {
                **scope,
                "path": label,
                "raw_path": label.encode(),
                _REAL_PATH: (path, scope.get("raw_path")),
            }
        await original(self, scope, receive, send)

    RunnerTrafficMetricsMiddleware.__call__ = bounded
    RunnerTrafficMetricsMiddleware._vigil_bounded = True


def _restore_path(app):
    async def restored(scope, receive, send):
        real = scope.get(_REAL_PATH)
        if real is not None:
            scope = {k: v for k, v in scope.items() if k != _REAL_PATH}
            scope["path"], raw = real
            if raw is not None:
                scope["raw_path"] = raw
            else:
                scope.pop("raw_path", None)
        await app(scope, receive, send)

    return restored
