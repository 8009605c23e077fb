"""One drift check of the production model's latest window, as the contract's JSON object."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from monitoring.detect import Detection, detect
from vigil.log.inference_log import InferenceLog, InferenceLogError
from vigil.registry.store import (
    LABEL_COLUMN,
    PREDICTION_COLUMN,
    NoProductionModel,
    Pointer,
    Registry,
)
from vigil.schema import to_frame

log = logging.getLogger(__name__)

OK = "ok"
INSUFFICIENT = "insufficient_data"
ERROR = "error"


class CheckFailed(RuntimeError):
    """The check could not run (store unreachable, no production model); says why in a line."""


@dataclass
class ReportJob:
    """What the HTML report of one check needs; rendered inline (``check``) or later by the
    running monitor's report worker, so the verdict never waits for Evidently."""

    schema: object
    reference: pd.DataFrame  # with the reference predictions, when known
    current: pd.DataFrame  # the tested window, with its predictions
    detection: Detection
    summary: dict  # the check's JSON as the verdict left it
    check: dict | None = None  # the JSON whose report_path the rendered report fills in

    def render(self, settings):
        """Write the report (``monitoring.report.write_report``); raises on failure."""
        from monitoring.report import write_report

        return write_report(
            settings.reports_dir,
            schema=self.schema,
            reference=self.reference,
            current=self.current,
            detection=self.detection,
            share=settings.drift_share,
            summary=self.summary,
            keep=settings.reports_keep,
        )


@dataclass
class CheckResult:
    payload: dict  # exactly what ``check --json`` prints
    outcome: str  # OK or INSUFFICIENT
    reference_metrics: dict  # the model's held-out metrics
    detection: Detection | None = None
    evidently: dict | None = None  # what the HTML report's Evidently part computed
    report_job: ReportJob | None = None  # the report still to render (report=False)


def _finite(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def report_failure(exc: BaseException) -> str:
    return f"report failed: {type(exc).__name__}: {exc}".splitlines()[0][:300]


def add_note(message: str | None, note: str) -> str:
    return f"{message}; {note}" if message else note


class Checker:
    """Runs checks for one settings object; keeps the log engine and each model's reference."""

    def __init__(self, settings, *, report: bool = True, log: InferenceLog | None = None):
        self.settings = settings
        self.report = report  # False: the result carries a ReportJob for the caller to render
        # Asked just before a candidate verdict is stored (the monitor's leader's confirm).
        self.fence: Callable[[], bool] | None = None
        self._log = log
        self._models: dict[str, tuple] = {}
        self._estimators: dict[str, object] = {}  # tag -> QualityEstimator or None
        self._schema_ready = False

    def ensure_schema(self) -> None:
        """Create a fresh store's log schema (a store before any traffic is an empty window,
        not an error) and check its version, once: it costs a few queries."""
        if not self._schema_ready:
            self.log.create_schema()
            self._schema_ready = True

    @property
    def log(self) -> InferenceLog:
        if self._log is None:
            try:
                self._log = InferenceLog.from_settings(self.settings)
            except (OSError, ValueError) as exc:
                raise CheckFailed(f"inference log unusable: {exc}") from exc
        return self._log

    def close(self) -> None:
        if self._log is not None:
            self._log.close()

    def production_tag(self) -> str | None:
        return self.production_pointer().tag

    def production_pointer(self) -> Pointer:
        """Which model is production, and since when."""
        try:
            return Registry(self.settings).pointer()
        except Exception as exc:
            raise CheckFailed(f"cannot read the production pointer: {exc}") from exc

    def production(self):
        """(bundle, schema, reference features, reference predictions) of the production model."""
        registry = Registry(self.settings)
        try:
            tag = registry.production_tag()
            if tag not in self._models:
                bundle = registry.load_production()
                schema = bundle.schema
                reference = to_frame(schema, bundle.reference)
                predictions = (
                    bundle.task.prediction_values(bundle.reference[PREDICTION_COLUMN])
                    if PREDICTION_COLUMN in bundle.reference
                    else None
                )
                self._models = {tag: (bundle, schema, reference, predictions)}  # only the latest
        except NoProductionModel as exc:
            raise CheckFailed(str(exc)) from None
        except Exception as exc:  # a damaged store: say which model, not a traceback
            raise CheckFailed(f"cannot load the production model: {exc}") from exc
        return self._models[tag]

    def check(self, window_rows: int | None = None) -> CheckResult:
        s = self.settings
        bundle, schema, reference, ref_pred = self.production()
        n = window_rows or s.drift_window_rows
        since = time.time() - s.drift_window_minutes * 60 if s.drift_window_minutes else None
        try:
            self.ensure_schema()
            window = self.log.latest(
                bundle.tag, n, since=since, max_rows=s.drift_max_rows, probabilities=True
            )
        except InferenceLogError as exc:
            raise CheckFailed(str(exc)) from None
        payload = {
            "model_version": bundle.tag,
            "window_rows": window.total_rows,
            "reference_rows": len(reference),
            "sampled": window.sampled,
            "drift_detected": None,
            "drift_share": None,
            "drifted_features": [],
            "features": {},
            "prediction_drift": None,
            "report_path": None,
            "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "message": None,
        }
        result = CheckResult(payload, INSUFFICIENT, dict(bundle.metrics))
        if window.total_rows < s.drift_min_rows:
            span = f" of the last {s.drift_window_minutes:g} minutes" if since else ""
            payload["message"] = (
                f"only {window.total_rows} logged rows{span} for {bundle.tag}; "
                f"a drift check needs at least {s.drift_min_rows}"
            )
        else:
            current = to_frame(schema, window.frame)  # the model's input types, once
            self._detect(result, schema, reference, ref_pred, window, current, bundle.task)
            self._window_quality(result, schema, reference, window, current, bundle)
        self._quality(result, schema, bundle)
        self._candidate(result, bundle)
        if self.report:
            self.write_report(result)
        return result

    def _detect(self, result, schema, reference, ref_pred, window, current, task) -> None:
        s, payload = self.settings, result.payload
        cur_pred = (
            task.prediction_values(window.frame["prediction"])
            if "prediction" in window.frame
            else None
        )
        detection = detect(
            schema,
            reference,
            current,
            alpha=s.drift_alpha,
            share=s.drift_share,
            reference_predictions=ref_pred,
            current_predictions=cur_pred,
            prediction_method=task.prediction_drift_method,
        )
        result.outcome, result.detection = OK, detection
        payload.update(
            drift_detected=detection.drift_detected,
            drift_share=detection.drift_share,
            drifted_features=detection.drifted_features,
            features={name: f.to_dict() for name, f in detection.features.items()},
            prediction_drift=detection.prediction.to_dict() if detection.prediction else None,
        )
        if window.sampled:
            payload["message"] = (
                f"the window's {window.total_rows} rows were read as a uniform sample of "
                f"{len(current)} (VIGIL_DRIFT_MAX_ROWS)"
            )
        payload["tested_rows"] = len(current)
        if cur_pred is not None:
            current = current.assign(**{PREDICTION_COLUMN: cur_pred})
        if ref_pred is not None:
            reference = reference.assign(**{PREDICTION_COLUMN: ref_pred})
        result.report_job = ReportJob(schema, reference, current, detection, payload)

    def write_report(self, result) -> None:
        """Render the result's pending HTML report and fill in ``report_path`` (or a note in
        ``message`` when it fails: the verdict stands without its HTML)."""
        if result.report_job is None:
            return
        payload, job, result.report_job = result.payload, result.report_job, None
        try:
            outcome = job.render(self.settings)
        except Exception as exc:  # the verdict stands without its HTML
            log.warning("drift report failed", exc_info=True)
            payload["message"] = add_note(payload["message"], report_failure(exc))
            return
        payload["report_path"] = str(outcome.path)
        result.evidently = outcome.evidently

    def _quality(self, result, schema, bundle) -> None:
        from monitoring.quality import live_quality

        labels = bundle.reference.get(LABEL_COLUMN)
        try:
            quality = live_quality(
                self.log,
                bundle.tag,
                schema,
                self.settings.quality_window_rows,
                reference_labels=labels,
                alpha=self.settings.drift_alpha,
                task=bundle.task,
            )
        except InferenceLogError as exc:
            raise CheckFailed(str(exc)) from None
        if quality is not None:
            result.payload["quality"] = {k: _finite(v) for k, v in quality.items()}
            self._estimate_error(result, schema, bundle)

    def estimator(self, bundle):
        """The model's quality estimator (``vigil.estimate``); None without one. Raises what
        loading it raised (the callers drop the estimate, not the check)."""
        from vigil.estimate import QualityEstimator

        if bundle.tag not in self._estimators:
            self._estimators = {bundle.tag: QualityEstimator.of(bundle)}  # only the latest
        return self._estimators[bundle.tag]

    def _window_quality(self, result, schema, reference, window, current, bundle) -> None:
        """Data quality and the estimated quality of the window."""
        from monitoring.data_quality import assess
        from monitoring.estimate import movement, window_estimate

        payload = result.payload
        checked = assess(
            schema, reference, current, alpha=self.settings.drift_alpha, raw=window.frame
        )
        payload["data_quality"] = {name: q.to_dict() for name, q in checked.items()}
        try:
            estimator = self.estimator(bundle)
            if estimator is None:
                return
            estimated, support = window_estimate(estimator, schema, window.frame)
        except Exception as exc:  # the verdict stands without its estimate
            log.warning("quality estimate failed", exc_info=True)
            payload["message"] = add_note(payload["message"], f"estimate failed: {exc}"[:300])
            return
        payload["estimated_quality"] = {k: _finite(v) for k, v in estimated.items()}
        payload["estimated_quality_note"] = movement(
            estimated, result.reference_metrics, estimator.metrics, support
        )
        if support is not None:
            payload["estimated_quality_support"] = support

    def _estimate_error(self, result, schema, bundle) -> None:
        """Estimate − realized on the labeled rows behind ``quality``."""
        from monitoring.estimate import estimate_errors

        try:
            estimator = self.estimator(bundle)
            if estimator is None:
                return
            labeled = self.log.labeled(bundle.tag, self.settings.quality_window_rows)
            errors = estimate_errors(estimator, schema, labeled, result.payload["quality"])
        except InferenceLogError as exc:
            raise CheckFailed(str(exc)) from None
        except Exception as exc:  # the realized quality stands without the estimate's error
            log.warning("quality estimate error failed", exc_info=True)
            result.payload["message"] = add_note(
                result.payload["message"], f"estimate error failed: {exc}"[:300]
            )
            return
        result.payload["estimate_error"] = errors

    def _candidate(self, result, bundle) -> None:
        """A shadow's or canary's verdict (``monitoring.candidate``), when one runs."""
        from monitoring.candidate import check_candidate

        try:
            candidate = check_candidate(self.settings, self.log, bundle, fence=self.fence)
        except InferenceLogError as exc:
            raise CheckFailed(str(exc)) from None
        except Exception as exc:  # the drift verdict stands without the candidate's
            log.warning("candidate check failed", exc_info=True)
            result.payload["message"] = add_note(
                result.payload["message"], f"candidate check failed: {exc}"[:300]
            )
            return
        if candidate is not None:
            result.payload["candidate"] = candidate
