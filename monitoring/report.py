"""The HTML drift report: Evidently, told to use our tests and thresholds, plus our verdicts.

Evidently runs ``monitoring.detect``'s own test functions (registered as custom stat tests)
with the thresholds the check applied, so every score, threshold and verdict in its widgets is
the one in the JSON and the metrics. Evidently rounds what it displays (a threshold of 0.00033
shows as "0.00"), so a small table at the top states them exactly. Columns that could not be
tested (all values missing) stay out of Evidently, which fails on them, and are listed in the
table.
"""

from __future__ import annotations

import html
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from monitoring.detect import CHISQUARE, KS, Detection, column_pvalue
from monitoring.report_html import plain_page, safe_evidently_page
from monitoring.report_quality import quality_tables
from monitoring.report_store import prune_reports, report_name
from vigil.schema import FeatureSchema

PREDICTION = "__prediction__"
# Names of our tests in Evidently's registry; the JSON says "ks" and "chisquare".
EVIDENTLY_METHOD = {KS: "vigil_ks", CHISQUARE: "vigil_chisquare"}


@dataclass(frozen=True)
class ReportOutcome:
    path: Path
    # What Evidently computed, per column: method, threshold, score, drifted (for checks).
    evidently: dict[str, dict]


def _register_stattests() -> None:
    from evidently.legacy.calculations.stattests.registry import (
        StatTest,
        _registered_stat_tests,
        register_stattest,
    )
    from evidently.legacy.core import ColumnType

    if EVIDENTLY_METHOD[KS] in _registered_stat_tests:
        return

    def vigil_ks(reference, current, _type, threshold):
        p = _pvalue("numeric", reference, current)
        return p, p < threshold

    def vigil_chisquare(reference, current, _type, threshold):
        p = _pvalue("categorical", reference, current)
        return p, p < threshold

    register_stattest(
        StatTest(EVIDENTLY_METHOD[KS], "ks p_value (vigil)", [ColumnType.Numerical]), vigil_ks
    )
    register_stattest(
        StatTest(
            EVIDENTLY_METHOD[CHISQUARE],
            "chi-square homogeneity p_value (vigil)",
            [ColumnType.Categorical],
        ),
        vigil_chisquare,
    )


# Evidently runs each column's test three times on the same data (the value, the count of
# drifted columns, the table): a KS test is computed once per report and its result reused.
_MEMO: dict[tuple, float] = {}


def _pvalue(kind: str, reference: pd.Series, current: pd.Series) -> float:
    if kind != "numeric":  # counting categories costs what the test costs
        return column_pvalue(kind, reference, current)
    key = (reference.name, len(reference), len(current), reference.sum(), current.sum())
    if key not in _MEMO:
        _MEMO[key] = column_pvalue(kind, reference, current)
    return _MEMO[key]


def write_report(
    reports_dir: Path,
    *,
    schema: FeatureSchema,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    detection: Detection,
    share: float,
    summary: dict,
    keep: int,
) -> ReportOutcome:
    """Run Evidently on the tested columns (plus ``__prediction__``), save the HTML atomically
    and apply retention. ``summary`` is the check's JSON so far (shown at the top)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    _register_stattests()
    tested = detection.tested
    numeric = [c for c in tested if schema[c].kind == "numeric"]
    categorical = [c for c in tested if schema[c].kind == "categorical"]
    metrics: list = []
    if tested:
        metrics.append(
            DataDriftPreset(
                columns=tested,
                drift_share=share,
                per_column_method={
                    c: EVIDENTLY_METHOD[detection.features[c].method] for c in tested
                },
                per_column_threshold={c: detection.features[c].threshold for c in tested},
            )
        )
    columns = list(tested)
    if detection.prediction is not None and PREDICTION in reference and PREDICTION in current:
        # A classifier's predictions are categories (chi-square), a regressor's numbers (KS).
        method = detection.prediction.method
        columns.append(PREDICTION)
        (numeric if method == KS else categorical).append(PREDICTION)
        metrics.append(
            ValueDrift(
                column=PREDICTION,
                method=EVIDENTLY_METHOD[method],
                threshold=detection.prediction.threshold,
            )
        )
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    body: str | None = None
    evidently: dict[str, dict] = {}
    _MEMO.clear()
    if metrics:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            snapshot = Report(metrics, include_tests=True).run(
                current_data=Dataset.from_pandas(current[columns], data_definition=definition),
                reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
            )
            body = snapshot.get_html_str(as_iframe=False)
        evidently = _value_drifts(snapshot.dict())
        _MEMO.clear()
    banner = summary_table(summary, schema)  # with nothing testable, the table alone
    page = plain_page(banner) if body is None else safe_evidently_page(body, banner)
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / report_name(summary["model_version"], time.time())
    fd, tmp = tempfile.mkstemp(dir=reports_dir, prefix=".tmp-", suffix=".html")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(page)
    os.replace(tmp, path)  # the server never serves half a file
    prune_reports(reports_dir, keep)
    return ReportOutcome(path=path, evidently=evidently)


def _value_drifts(snapshot: dict) -> dict[str, dict]:
    status = {
        t["metric_config"]["metric_id"]: t["status"]
        for t in snapshot.get("tests", [])
        if t.get("id") == "drift"
    }
    out = {}
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            out[config["column"]] = {
                "method": config["method"],
                "threshold": config["threshold"],
                "score": metric["value"],
                "drifted": status.get(metric["id"]) == "FAIL",
            }
    return out


def summary_table(summary: dict, schema: FeatureSchema) -> str:
    def e(value) -> str:  # names, notes and versions come from data
        return html.escape(str(value))

    def num(value) -> str:
        return "—" if value is None else f"{value:.3g}"

    rows = "".join(
        f"<tr{' style=background:#fde2e1' if f['drifted'] else ''}><td>{e(name)}</td>"
        f"<td>{e(schema[name].kind)}</td><td>{e(f['method'])}</td><td>{e(f['score_kind'])}</td>"
        f"<td>{num(f['score'])}</td><td>{num(f['threshold'])}</td>"
        f"<td>{'yes' if f['drifted'] else 'no'}</td><td>{f['missing_share']:.1%}</td>"
        f"<td>{e(f.get('note') or '')}</td></tr>"
        for name, f in summary["features"].items()
    )
    pred = summary.get("prediction_drift")
    pred_line = (
        f"Prediction drift: {e(pred['method'])} {e(pred['score_kind'])} {num(pred['score'])}, "
        f"threshold {num(pred['threshold'])}, drifted: {'yes' if pred['drifted'] else 'no'}."
        if pred
        else ""
    )
    sampled = " (a uniform sample was tested)" if summary["sampled"] else ""
    missing = [name for name, f in summary["features"].items() if f["score"] is None]
    untested = (
        f" Not in Evidently's part (no values to test): {e(', '.join(missing))}; its drift "
        "share counts only the columns it shows."
        if missing
        else ""
    )
    return (
        "<div style='font-family:sans-serif;margin:16px'>"
        f"<h2>Vigil drift check: {e(summary['model_version'])}</h2>"
        f"<p>Checked at {e(summary['checked_at'])}; window {summary['window_rows']} rows{sampled};"
        f" reference {summary['reference_rows']} rows. Drift share {summary['drift_share']}, "
        f"dataset drift: {'yes' if summary['drift_detected'] else 'no'}. "
        "Each feature's p-value is compared with alpha divided by the number of features "
        "(Bonferroni), as in the Evidently widgets below, which round it."
        f"{untested}</p>"
        f"<p>{pred_line}</p>"
        "<table border=1 cellpadding=4 style='border-collapse:collapse'><tr><th>feature</th>"
        "<th>kind</th><th>method</th><th>score kind</th><th>score</th><th>threshold</th>"
        f"<th>drifted</th><th>missing</th><th>note</th></tr>{rows}</table>"
        f"{quality_tables(summary)}</div>"
    )
