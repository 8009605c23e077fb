"""One drift check of the production model's latest window, as the contract's JSON object."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from monitoring.detect import Detection, detect
from vigil.inference_log import InferenceLog, InferenceLogError
from vigil.registry import LABEL_COLUMN, PREDICTION_COLUMN, NoProductionModel, Registry
from vigil.schema import _plain, to_frame

log = logging.getLogger(__name__)

OK = "ok"
INSUFFICIENT = "insufficient_data"
ERROR = "error"


class CheckFailed(RuntimeError):
    """The check could not run (store unreachable, no production model); says why in a line."""


@dataclass
class CheckResult:
    payload: dict  # exactly what ``check --json`` prints
    outcome: str  # OK or INSUFFICIENT
    reference_metrics: dict  # the model's held-out metrics
    detection: Detection | None = None
    evidently: dict | None = None  # what the HTML report's Evidently part computed


def _classes(values: pd.Series) -> pd.Series:
    # Logged 1, reference "1": the same class.
    return values.dropna().map(lambda v: str(_plain(v)))


def _finite(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


class Checker:
    """Runs checks for one settings object; keeps the log engine and each model's reference."""

    def __init__(self, settings, *, report: bool = True, log: InferenceLog | None = None):
        self.settings = settings
        self.report = report
        self._log = log
        self._models: dict[str, tuple] = {}

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
                    _classes(bundle.reference[PREDICTION_COLUMN])
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
            self.log.create_schema()  # a fresh store before any traffic is an empty window
            window = self.log.latest(bundle.tag, n, since=since, max_rows=s.drift_max_rows)
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
            self._detect(result, schema, reference, ref_pred, window)
        self._quality(result, schema, bundle)
        return result

    def _detect(self, result, schema, reference, ref_pred, window) -> None:
        s, payload = self.settings, result.payload
        current = to_frame(schema, window.frame)
        cur_pred = _classes(window.frame["prediction"]) if "prediction" in window.frame else None
        detection = detect(
            schema,
            reference,
            current,
            alpha=s.drift_alpha,
            share=s.drift_share,
            reference_predictions=ref_pred,
            current_predictions=cur_pred,
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
        if self.report:
            self._report(result, schema, reference, current, ref_pred, cur_pred)

    def _report(self, result, schema, reference, current, ref_pred, cur_pred) -> None:
        from monitoring.report import write_report

        payload, s = result.payload, self.settings
        if cur_pred is not None:
            current = current.assign(**{PREDICTION_COLUMN: cur_pred})
        if ref_pred is not None:
            reference = reference.assign(**{PREDICTION_COLUMN: ref_pred})
        try:
            outcome = write_report(
                s.reports_dir,
                schema=schema,
                reference=reference,
                current=current,
                detection=result.detection,
                share=s.drift_share,
                summary=payload,
                keep=s.reports_keep,
            )
        except Exception as exc:  # the verdict stands without its HTML
            log.warning("drift report failed", exc_info=True)
            note = f"report failed: {type(exc).__name__}: {exc}".splitlines()[0][:300]
            payload["message"] = f"{payload['message']}; {note}" if payload["message"] else note
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
            )
        except InferenceLogError as exc:
            raise CheckFailed(str(exc)) from None
        if quality is not None:
            result.payload["quality"] = {k: _finite(v) for k, v in quality.items()}
