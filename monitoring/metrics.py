"""The monitor's Prometheus metrics, set from a check's JSON so both always say the same.

Every series that carries ``model_version`` belongs to that version: when production moves
to another version, the old version's series are removed rather than left frozen. They come
only from the leader (``monitoring.leader``): a monitor that stops leading removes them, so two
monitors scraped together never export two verdicts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.process_collector import ProcessCollector

from vigil.tasks import QUALITY_METRICS

OUTCOMES = ("ok", "insufficient_data", "error")


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry, *, process: bool = True):
        self.registry = registry
        if process:  # process_start_time_seconds: the staleness alert counts from it
            ProcessCollector(registry=registry)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        v = ("model_version",)
        self.production = gauge(
            "vigil_production_model_info",
            "1 for the registry's production model version, as the leading monitor read it",
            v,
        )
        self.drift_detected = gauge(
            "vigil_drift_detected", "1 when drift_share >= VIGIL_DRIFT_SHARE in the last check", v
        )
        self.drift_share = gauge("vigil_drift_share", "Share of features that drifted", v)
        self.feature_score = gauge(
            "vigil_feature_drift_score",
            "Per-feature drift score (a p-value: drifted below the threshold)",
            (*v, "feature", "method"),
        )
        self.feature_threshold = gauge(
            "vigil_feature_drift_threshold",
            "Threshold applied to the feature's score (alpha / features, Bonferroni)",
            (*v, "feature", "method"),
        )
        self.feature_drifted = gauge(
            "vigil_feature_drifted", "1 when the feature drifted", (*v, "feature")
        )
        self.feature_missing = gauge(
            "vigil_feature_missing_share",
            "Share of window rows missing the feature",
            (*v, "feature"),
        )
        self.prediction_score = gauge(
            "vigil_prediction_drift_score", "p-value of the predicted classes' drift", v
        )
        self.prediction_drifted = gauge(
            "vigil_prediction_drifted", "1 when the predicted classes drifted", v
        )
        self.window_rows = gauge("vigil_drift_window_rows", "Rows in the last check's window", v)
        self.window_sampled = gauge(
            "vigil_drift_window_sampled", "1 when the window was read as a uniform sample", v
        )
        self.last_run = gauge(
            "vigil_drift_last_run_timestamp_seconds", "Unix time the last check started"
        )
        self.last_success = gauge(
            "vigil_drift_last_success_timestamp_seconds",
            "Unix time of the last check that ran (outcome ok or insufficient_data)",
        )
        self.duration = gauge(
            "vigil_drift_run_duration_seconds",
            "Duration of the last check's verdict (window read, tests, gauges; not the report)",
        )
        self.leader = gauge(
            "vigil_monitor_leader", "1 when this monitor is the one that checks (leader)"
        )
        self.leader_since = gauge(
            "vigil_monitor_leader_since_timestamp_seconds",
            "Unix time this monitor became leader (0 on a standby)",
        )
        self.report_duration = gauge(
            "vigil_drift_report_duration_seconds", "Time the last HTML report took to render"
        )
        self.reports = Counter(
            "vigil_drift_reports",
            "HTML reports by outcome (superseded: a newer check's report replaced it unstarted)",
            ("outcome",),
            registry=registry,
        )
        for outcome in ("written", "failed", "superseded"):
            self.reports.labels(outcome)
        self.runs = Counter(
            "vigil_drift_runs", "Drift checks by outcome", ("outcome",), registry=registry
        )
        for outcome in OUTCOMES:
            self.runs.labels(outcome)
        self.quality = gauge(
            "vigil_model_quality", "Quality on the latest labeled production rows", (*v, "metric")
        )
        self.quality_reference = gauge(
            "vigil_model_quality_reference", "Held-out quality measured at training", (*v, "metric")
        )
        self.labeled_rows = gauge(
            "vigil_labeled_rows", "Labeled rows behind vigil_model_quality", v
        )
        self.labeled_fraction = gauge(
            "vigil_labeled_fraction", "Share of the version's logged predictions with a label", v
        )
        self.label_delay = gauge(
            "vigil_label_delay_seconds",
            "Delay from prediction to label over the labeled rows",
            (*v, "quantile"),
        )
        self.label_drift = gauge(
            "vigil_label_drift_score",
            "p-value of the labeled rows' class mix against the training labels",
            v,
        )
        self.label_drifted = gauge(
            "vigil_label_drifted", "1 when the labels' class mix drifted from training", v
        )
        self.quality_estimated = gauge(
            "vigil_model_quality_estimated",
            "Quality estimated from the latest window without labels (CBPE or DLE)",
            (*v, "metric"),
        )
        self.quality_estimated_se = gauge(
            "vigil_model_quality_estimated_se",
            "Standard error of vigil_model_quality_estimated at the window's size",
            (*v, "metric"),
        )
        self.quality_estimate_vouched = gauge(
            "vigil_model_quality_estimate_vouched",
            "0 when the latest window lies beyond the reference's support, where the estimate "
            "and its standard error are outside what the reference can vouch for; 1 inside",
            v,
        )
        self.quality_estimate_error = gauge(
            "vigil_quality_estimate_error",
            "Estimated minus realized quality on the latest labeled rows",
            (*v, "metric"),
        )
        self.data_quality_flagged = gauge(
            "vigil_data_quality_flagged",
            "1 when a data-quality check of the feature rejected (corrected across checks)",
            (*v, "feature"),
        )
        self.data_quality_share = gauge(
            "vigil_data_quality_share",
            "Share of window rows missing, out of the training range, or of an unseen category",
            (*v, "feature", "check"),
        )
        self.pruned = Counter(
            "vigil_inference_log_pruned_rows",
            "Inference-log rows deleted by retention",
            registry=registry,
        )
        self.candidate_agreement = gauge(
            "vigil_candidate_agreement",
            "Candidate vs production on the rows both predicted: share of equal labels "
            "(classifiers) or mean absolute difference (regressors)",
            ("model_version", "candidate_version"),
        )
        self.candidate_better = gauge(
            "vigil_candidate_better",
            "1 when the paired test says the candidate is better, 0 worse; absent: undecided",
            ("model_version", "candidate_version"),
        )
        self.candidate_quality = gauge(
            "vigil_candidate_quality",
            "The candidate's live quality on the labeled rows both models predicted "
            "(also in vigil_model_quality under the candidate's version)",
            ("model_version", "candidate_version", "metric"),
        )
        self.candidate_rows = gauge(
            "vigil_candidate_rows",
            "Rows both models predicted, and of them labeled, behind the candidate's verdict",
            ("model_version", "candidate_version", "kind"),
        )
        self._version: str | None = None
        self._series: dict[Gauge, set[tuple[str, ...]]] = {}
        self._candidate: list[tuple[Gauge, tuple[str, ...]]] = []

    # -- bookkeeping: remember every labelled child so a version's series can be dropped ----

    def _set(self, gauge: Gauge, labels: tuple[str, ...], value: float) -> None:
        gauge.labels(*labels).set(value)
        self._series.setdefault(gauge, set()).add(labels)

    def _drop(self, gauges, version: str, keep=lambda labels: False) -> None:
        for gauge in gauges:
            for labels in list(self._series.get(gauge, ())):
                if labels[0] == version and not keep(labels):
                    gauge.remove(*labels)
                    self._series[gauge].discard(labels)

    def _verdict_gauges(self):
        return (
            self.drift_detected,
            self.drift_share,
            self.feature_score,
            self.feature_threshold,
            self.feature_drifted,
            self.feature_missing,
            self.prediction_score,
            self.prediction_drifted,
        )

    def forget(self, version: str) -> None:
        self._drop(list(self._series), version)

    def set_leader(self, leading: bool, since: float | None) -> None:
        """Leadership changed; a standby exports no per-version series at all."""
        self.leader.set(int(leading))
        self.leader_since.set((since or 0) if leading else 0)
        if not leading and self._version is not None:
            self.forget(self._version)
            self._version = None
        if not leading:
            self._record_candidate("", None)
            self.set_production(None)

    def set_production(self, version: str | None) -> None:
        """The production tag read at the start of a check (before it can fail): compared
        with what the replicas serve (``ProductionModelNotServed``)."""
        for labels in list(self._series.get(self.production, ())):
            if labels[0] != version:
                self.production.remove(*labels)
                self._series[self.production].discard(labels)
        if version is not None:
            self._set(self.production, (version,), 1)

    # -- recording ---------------------------------------------------------------------------

    def record_run(
        self, outcome: str, started: float, duration: float, *, success: bool | None = None
    ) -> None:
        """``success`` (default: any outcome but ``error``) moves the last-success time that
        ``DriftCheckStale`` watches."""
        self.runs.labels(outcome).inc()
        self.last_run.set(started)
        self.duration.set(duration)
        if success if success is not None else outcome != "error":
            self.last_success.set(started + duration)

    def record_check(self, payload: dict, reference_metrics: dict) -> None:
        """Set every per-version series from a check's JSON."""
        version = payload["model_version"]
        if self._version is not None and self._version != version:
            self.forget(self._version)
        self._version = version
        v = (version,)
        self._set(self.window_rows, v, payload["window_rows"])
        self._set(self.window_sampled, v, int(payload["sampled"]))
        if payload["drift_detected"] is None:
            # No verdict on too few rows: an earlier verdict must not keep an alert firing.
            self._drop(self._verdict_gauges(), version)
        else:
            self._record_verdict(version, payload)
        for metric, value in reference_metrics.items():
            if isinstance(value, int | float):
                self._set(self.quality_reference, (version, metric), value)
        self._record_window_quality(version, payload)
        quality = payload.get("quality")
        self._drop(self._quality_gauges(), version)
        if quality:
            self._set(self.labeled_rows, v, quality["labeled_rows"])
            self._set(self.labeled_fraction, v, quality["labeled_fraction"])
            for q in ("0.5", "0.9"):
                key = "label_delay_seconds_" + ("median" if q == "0.5" else "p90")
                self._set(self.label_delay, (version, q), quality[key])
            for metric in QUALITY_METRICS:
                if quality.get(metric) is not None:  # roc_auc is undefined on one class
                    self._set(self.quality, (version, metric), quality[metric])
            if "label_drift" in quality:
                self._set(self.label_drift, v, quality["label_drift"]["score"])
                self._set(self.label_drifted, v, int(quality["label_drift"]["drifted"]))
        self._record_candidate(version, payload.get("candidate"))

    def _record_candidate(self, version: str, candidate: dict | None) -> None:
        """The candidate's series, replaced whole at every check (gone when none runs)."""
        for gauge, labels in self._candidate:
            try:
                gauge.remove(*labels)
            except KeyError:
                pass
        self._candidate = []
        if not candidate:
            return

        def put(gauge: Gauge, labels: tuple[str, ...], value) -> None:
            gauge.labels(*labels).set(value)
            self._candidate.append((gauge, labels))

        pair = (version, candidate["model_version"])
        put(self.candidate_rows, (*pair, "both"), candidate["rows"])
        put(self.candidate_rows, (*pair, "labeled"), candidate["labeled_rows"])
        if candidate.get("agreement") is not None:
            put(self.candidate_agreement, pair, candidate["agreement"])
        if candidate.get("better") is not None:
            put(self.candidate_better, pair, int(candidate["better"]))
        quality = (candidate.get("quality") or {}).get("candidate") or {}
        for metric in QUALITY_METRICS:
            if quality.get(metric) is not None:
                put(self.quality, (candidate["model_version"], metric), quality[metric])
                put(self.candidate_quality, (*pair, metric), quality[metric])

    def _record_window_quality(self, version: str, payload: dict) -> None:
        """Estimated quality, its error on labeled rows, and data quality (issue 20)."""
        self._drop(
            (
                self.quality_estimated,
                self.quality_estimated_se,
                self.quality_estimate_vouched,
                self.quality_estimate_error,
                self.data_quality_flagged,
                self.data_quality_share,
            ),
            version,
        )
        estimated = payload.get("estimated_quality") or {}
        for metric, value in estimated.items():
            if value is None:
                continue
            if metric.endswith("_se"):
                self._set(self.quality_estimated_se, (version, metric[:-3]), value)
            else:
                self._set(self.quality_estimated, (version, metric), value)
        support = payload.get("estimated_quality_support")
        if estimated and support is not None:
            self._set(self.quality_estimate_vouched, (version,), int(bool(support["vouched"])))
        for metric, value in (payload.get("estimate_error") or {}).items():
            self._set(self.quality_estimate_error, (version, metric), value)
        for feature, q in (payload.get("data_quality") or {}).items():
            self._set(self.data_quality_flagged, (version, feature), int(q["flagged"]))
            for check in ("missing", "out_of_range", "unseen"):
                if q.get(check + "_share") is not None:
                    self._set(
                        self.data_quality_share, (version, feature, check), q[check + "_share"]
                    )

    def _quality_gauges(self):
        return (
            self.quality,
            self.labeled_rows,
            self.labeled_fraction,
            self.label_delay,
            self.label_drift,
            self.label_drifted,
        )

    def _record_verdict(self, version: str, payload: dict) -> None:
        v = (version,)
        self._set(self.drift_detected, v, int(payload["drift_detected"]))
        self._set(self.drift_share, v, payload["drift_share"])
        untested = set()
        for name, f in payload["features"].items():
            labels = (version, name, f["method"])
            self._set(self.feature_threshold, labels, f["threshold"])
            self._set(self.feature_drifted, (version, name), int(f["drifted"]))
            self._set(self.feature_missing, (version, name), f["missing_share"])
            if f["score"] is None:
                untested.add(labels)
            else:
                self._set(self.feature_score, labels, f["score"])
        # A feature that could not be tested has no score: absent, not a stale number.
        self._drop((self.feature_score,), version, keep=lambda labels: labels not in untested)
        pred = payload.get("prediction_drift")
        if pred:
            self._set(self.prediction_score, v, pred["score"])
            self._set(self.prediction_drifted, v, int(pred["drifted"]))
        else:
            self._drop((self.prediction_score, self.prediction_drifted), version)
