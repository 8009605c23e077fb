"""Vigil's Grafana dashboards as code (grafana-foundation-sdk 0.0.21, dashboard schema 42).

``vigil render dashboards`` writes the JSON that Grafana provisions (``grafana/dashboards`` of
a checkout); a test keeps the committed JSON equal to this generator's output.
``dashboard_queries()`` gives every panel's PromQL with Grafana's macros substituted, so tests
can run the dashboards' queries against a real Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

# Where a checkout keeps them (relative to the working directory).
DASHBOARDS_DIR = Path("grafana") / "dashboards"
# Panels point at a dashboard variable, so the JSON works with any Prometheus data source;
# provisioning makes Vigil's the default.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Probe and scrape paths are not traffic.
API_ENDPOINTS = 'endpoint=~"/predict|/feedback|/model"'
DRIFT_ALERTS = (
    "DataDriftDetected|FeatureDriftDetected|DriftCheckStale|DriftMonitorDown|ModelQualityDrop"
    "|ModelQualityDropEstimated|DataQualityDegraded"
)


# Quality metrics by task (vigil.tasks): scores in [0, 1] and a regressor's errors.
CLASSIFIER_SCORES = "accuracy|f1|precision|recall|roc_auc"
REGRESSOR_ERRORS = "mae|rmse|mean_error"


def _query(expr: str, legend: str = "__auto", ref: str = "A") -> Dataquery:
    return Dataquery().expr(expr).legend_format(legend).ref_id(ref).range().datasource(DATASOURCE)


def _instant(expr: str, ref: str = "A") -> Dataquery:
    return (
        Dataquery()
        .expr(expr)
        .ref_id(ref)
        .instant()
        .format(PromQueryFormat.TABLE)
        .datasource(DATASOURCE)
    )


def _legend(placement: common.LegendPlacement = common.LegendPlacement.BOTTOM):
    return (
        common_builders.VizLegendOptions()
        .show_legend(True)
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(placement)
    )


def _thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def _timeseries(title: str, description: str, unit: str, *queries: Dataquery, w: int = 12):
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(w)
        .height(8)
        .legend(_legend())
        .line_width(1)
        .fill_opacity(10)
    )
    for query in queries:
        panel = panel.with_target(query)
    return panel


def _stat(title: str, description: str, unit: str, query: Dataquery, w: int = 6):
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(w)
        .height(5)
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(query)
    )


def _state_mappings(zero: tuple[str, str], one: tuple[str, str]) -> list:
    """Show a 0/1 gauge as words: ``(text, color)`` for 0 and for 1."""
    return [
        ValueMap(
            options={
                "0": ValueMappingResult(text=zero[0], color=zero[1], index=0),
                "1": ValueMappingResult(text=one[0], color=one[1], index=1),
            }
        )
    ]


def _base(uid: str, title: str, description: str) -> dash.Dashboard:
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["vigil"])
        .refresh("30s")
        .time("now-3h", "now")
        .timezone(common.TimeZoneBrowser)
        .editable()
        .with_variable(
            dash.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
    )


def service_dashboard() -> dash.Dashboard:
    rate = "[$__rate_interval]"
    duration_bucket = (
        f'sum by (le) (rate(bentoml_service_request_duration_seconds_bucket{{endpoint="/predict"}}'
        f"{rate}))"
    )
    value_bucket = f"sum by (le, model_version) (rate(vigil_prediction_value_bucket{rate}))"
    confidence_bucket = (
        f"sum by (le, model_version) (rate(vigil_prediction_confidence_bucket{rate}))"
    )
    return (
        _base(
            "vigil-service",
            "Vigil / Service",
            "The prediction service: traffic, errors, latency, predictions, inference log.",
        )
        .with_row(dash.Row("Health"))
        .with_panel(
            _stat(
                "Service up",
                "Prometheus can scrape the prediction service (job vigil-service).",
                "none",
                _query('min(up{job="vigil-service"}) or vector(0)', "up"),
            )
            .mappings(_state_mappings(("DOWN", "red"), ("UP", "green")))
            .thresholds(_thresholds((None, "red"), (1, "green")))
        )
        .with_panel(
            _stat(
                "Model served",
                "The production model each service instance serves (vigil_model_info).",
                "none",
                _query("max by (model_version) (vigil_model_info)", "{{model_version}}"),
                w=10,
            )
            .text_mode(common.BigValueTextMode.NAME)
            .color_mode(common.BigValueColorMode.NONE)
        )
        .with_panel(
            _stat(
                "5xx share (5m)",
                "Share of /predict and /feedback answered with a 5xx over 5 minutes.",
                "percentunit",
                _query(
                    'sum(rate(bentoml_service_request_total{endpoint=~"/predict|/feedback",'
                    ' http_response_code=~"5.."}[5m]))'
                    ' / sum(rate(bentoml_service_request_total{endpoint=~"/predict|/feedback"}'
                    "[5m])) or vector(0)",
                    "5xx share",
                ),
                w=8,
            ).thresholds(_thresholds((None, "green"), (0.01, "orange"), (0.05, "red")))
        )
        .with_row(dash.Row("Traffic"))
        .with_panel(
            _timeseries(
                "Requests per second",
                "HTTP requests per second by endpoint (probes and /metrics excluded).",
                "reqps",
                _query(
                    f"sum by (endpoint) (rate(bentoml_service_request_total{{{API_ENDPOINTS}}}"
                    f"{rate}))",
                    "{{endpoint}}",
                ),
            )
        )
        .with_panel(
            _timeseries(
                "Errors by code",
                "Non-2xx responses per second by endpoint and status code; 0 when healthy.",
                "reqps",
                _query(
                    "sum by (endpoint, http_response_code) "
                    f'(rate(bentoml_service_request_total{{http_response_code!~"2.."}}{rate}))'
                    " or vector(0)",
                    "{{endpoint}} {{http_response_code}}",
                ),
            )
        )
        .with_panel(
            _timeseries(
                "Latency of /predict",
                "p50, p95 and p99 of /predict request duration.",
                "s",
                _query(f"histogram_quantile(0.5, {duration_bucket})", "p50", "A"),
                _query(f"histogram_quantile(0.95, {duration_bucket})", "p95", "B"),
                _query(f"histogram_quantile(0.99, {duration_bucket})", "p99", "C"),
            )
        )
        .with_panel(
            _timeseries(
                "Requests in flight",
                "Requests being processed now, by endpoint.",
                "short",
                _query(
                    f"sum by (endpoint) (bentoml_service_request_in_progress{{{API_ENDPOINTS}}})",
                    "{{endpoint}}",
                ),
            )
        )
        .with_row(dash.Row("Predictions"))
        .with_panel(
            _timeseries(
                "Predictions by class",
                "Predicted instances (not requests) per second, by model version and class "
                "(a regressor's have no class).",
                "short",
                _query(
                    "sum by (model_version, predicted_class) "
                    f"(rate(vigil_predictions_total{rate}))",
                    "{{model_version}} class {{predicted_class}}",
                ),
            )
        )
        .with_panel(
            _timeseries(
                "Prediction confidence (classifiers)",
                "Top-class probability: median and 10th percentile. A falling confidence is an "
                "early hint of drift. Empty for regressors.",
                "percentunit",
                _query(
                    f"histogram_quantile(0.5, {confidence_bucket})", "{{model_version}} p50", "A"
                ),
                _query(
                    f"histogram_quantile(0.1, {confidence_bucket})", "{{model_version}} p10", "B"
                ),
            )
            .min(0)
            .max(1)
        )
        .with_panel(
            _timeseries(
                "Predicted values (regressors)",
                "A regressor's predictions: 10th, 50th and 90th percentiles, from buckets cut at "
                "its reference predictions' 5 % quantiles. Empty for classifiers.",
                "short",
                _query(f"histogram_quantile(0.1, {value_bucket})", "{{model_version}} p10", "A"),
                _query(f"histogram_quantile(0.5, {value_bucket})", "{{model_version}} p50", "B"),
                _query(f"histogram_quantile(0.9, {value_bucket})", "{{model_version}} p90", "C"),
            )
        )
        .with_panel(
            _timeseries(
                "Rejected inputs by reason",
                "Instances rejected with a 4xx per second, by reason; 0 when none.",
                "short",
                _query(
                    f"sum by (reason) (rate(vigil_input_rejected_total{rate})) or vector(0)",
                    "{{reason}}",
                ),
            )
        )
        .with_panel(
            _timeseries(
                "Unseen categories by feature",
                "Categories never seen in training, per second, by feature; 0 when none.",
                "short",
                _query(
                    f"sum by (feature) (rate(vigil_unseen_category_total{rate})) or vector(0)",
                    "{{feature}}",
                ),
            )
        )
        .with_row(dash.Row("Inference log"))
        .with_panel(
            _timeseries(
                "Inference log writes",
                "Rows written to the inference log, write failures (each one a 503) and "
                "feedback labels, per second.",
                "short",
                _query(f"sum(rate(vigil_inference_log_rows_total{rate}))", "rows logged", "A"),
                _query(
                    f"sum(rate(vigil_inference_log_failures_total{rate})) or vector(0)",
                    "write failures",
                    "B",
                ),
                _query(f"sum(rate(vigil_feedback_labels_total{rate}))", "feedback labels", "C"),
                w=24,
            )
        )
    )


def drift_dashboard() -> dash.Dashboard:
    return (
        _base(
            "vigil-drift",
            "Vigil / Drift",
            "The drift monitor: dataset and per-feature drift, check freshness, alerts, quality.",
        )
        .with_row(dash.Row("Now"))
        .with_panel(
            _stat(
                "Dataset drift",
                "The latest check's verdict per model version (vigil_drift_detected).",
                "none",
                _query("max by (model_version) (vigil_drift_detected)", "{{model_version}}"),
            )
            .mappings(_state_mappings(("No drift", "green"), ("DRIFT", "red")))
            .thresholds(_thresholds((None, "green"), (1, "red")))
        )
        .with_panel(
            _stat(
                "Drifted features",
                "Features flagged in the latest check, per model version.",
                "none",
                _query("sum by (model_version) (vigil_feature_drifted)", "{{model_version}}"),
            ).thresholds(_thresholds((None, "green"), (1, "orange")))
        )
        .with_panel(
            _stat(
                "Last successful check",
                "Age of the last successful drift check; DriftCheckStale fires past 20m.",
                "s",
                _query("time() - max(vigil_drift_last_success_timestamp_seconds)", "age"),
            ).thresholds(_thresholds((None, "green"), (600, "orange"), (1200, "red")))
        )
        .with_panel(
            _stat(
                "Alerts firing",
                "Alerts firing now in this Prometheus (its ALERTS series); 0 when healthy.",
                "none",
                _query(
                    'count(ALERTS{alertstate="firing"}) or vector(0)',
                    "firing",
                ),
            ).thresholds(_thresholds((None, "green"), (1, "red")))
        )
        .with_row(dash.Row("Drift"))
        .with_panel(
            _timeseries(
                "Drift share",
                "Share of features drifted at each check; the dataset counts as drifted at "
                "VIGIL_DRIFT_SHARE (default 0.5).",
                "percentunit",
                _query("vigil_drift_share", "{{model_version}}"),
            )
            .min(0)
            .max(1)
        )
        .with_panel(
            _timeseries(
                "Per-feature drift scores",
                "Each feature's test score (a p-value or a distance, see the method label).",
                "short",
                _query("vigil_feature_drift_score", "{{feature}} ({{method}})"),
            ).legend(_legend(common.LegendPlacement.RIGHT))
        )
        .with_panel(
            table.Panel()
            .title("Drifted features")
            .description("Features flagged in the latest check, with their scores.")
            .datasource(DATASOURCE)
            .span(12)
            .height(8)
            .with_target(
                _instant(
                    "vigil_feature_drift_score and on (model_version, feature) "
                    "(vigil_feature_drifted == 1)"
                )
            )
        )
        .with_panel(
            _timeseries(
                "Alerts firing by name",
                "Vigil drift and quality alerts firing over time; 0 when healthy.",
                "none",
                _query(
                    "sum by (alertname) "
                    f'(ALERTS{{alertstate="firing", alertname=~"{DRIFT_ALERTS}"}}) or vector(0)',
                    "{{alertname}}",
                ),
            )
        )
        .with_row(dash.Row("Checks"))
        .with_panel(
            _timeseries(
                "Window rows",
                "Rows in the window of the latest check, per model version.",
                "short",
                _query("vigil_drift_window_rows", "{{model_version}}"),
                w=8,
            )
        )
        .with_panel(
            _timeseries(
                "Check runs by outcome",
                "Checks per outcome (ok, insufficient_data, error) in each hour.",
                "short",
                _query("sum by (outcome) (increase(vigil_drift_runs_total[1h]))", "{{outcome}}"),
                w=8,
            )
        )
        .with_panel(
            _timeseries(
                "Check duration",
                "Duration of the latest drift check.",
                "s",
                _query("vigil_drift_run_duration_seconds", "duration"),
                w=8,
            )
        )
        .with_row(dash.Row("Model quality"))
        .with_panel(
            _timeseries(
                "Quality vs held-out reference (classifiers)",
                "Quality on the latest labeled production rows and on held-out data at training "
                "(reference), by metric; ModelQualityDrop fires 0.05 below the reference.",
                "percentunit",
                _query(
                    f'vigil_model_quality{{metric=~"{CLASSIFIER_SCORES}"}}',
                    "{{model_version}} {{metric}}",
                    "A",
                ),
                _query(
                    f'vigil_model_quality_reference{{metric=~"{CLASSIFIER_SCORES}"}}',
                    "{{model_version}} {{metric}} reference",
                    "B",
                ),
                w=8,
            )
        )
        .with_panel(
            _timeseries(
                "Error vs held-out reference (regressors)",
                "A regressor's MAE, RMSE and mean error (prediction − label) on the latest "
                "labeled rows and at training (reference); ModelQualityDrop fires when RMSE "
                "exceeds its reference by 20 %.",
                "short",
                _query(
                    f'vigil_model_quality{{metric=~"{REGRESSOR_ERRORS}"}}',
                    "{{model_version}} {{metric}}",
                    "A",
                ),
                _query(
                    f'vigil_model_quality_reference{{metric=~"{REGRESSOR_ERRORS}"}}',
                    "{{model_version}} {{metric}} reference",
                    "B",
                ),
                w=8,
            )
        )
        .with_panel(
            _timeseries(
                "R² vs held-out reference (regressors)",
                "A regressor's R² on the latest labeled rows and at training (reference).",
                "short",
                _query('vigil_model_quality{metric="r2"}', "{{model_version}} r2", "A"),
                _query(
                    'vigil_model_quality_reference{metric="r2"}',
                    "{{model_version}} r2 reference",
                    "B",
                ),
                w=8,
            )
        )
        .with_panel(
            _timeseries(
                "Labeled rows",
                "Labeled rows behind the quality figures, per model version.",
                "short",
                _query("vigil_labeled_rows", "{{model_version}}"),
            )
        )
        .with_row(dash.Row("Estimated quality and data quality"))
        .with_panel(
            _timeseries(
                "Estimated vs realized quality",
                "Quality estimated from each window's inputs without labels (CBPE for "
                "classifiers, DLE for regressors) beside the realized quality on labeled rows; "
                "ModelQualityDropEstimated fires past the margin and 3 standard errors.",
                "short",
                _query("vigil_model_quality_estimated", "{{model_version}} {{metric}} estimated"),
                _query("vigil_model_quality", "{{model_version}} {{metric}} realized", "B"),
            )
        )
        .with_panel(
            _timeseries(
                "Estimate error on labeled rows",
                "Estimated minus realized quality on the latest labeled rows: how far the "
                "label-free estimate can be trusted for this model.",
                "short",
                _query("vigil_quality_estimate_error", "{{model_version}} {{metric}}"),
            )
        )
        .with_panel(
            _timeseries(
                "Data-quality flags",
                "1 where a feature's data-quality test rejected in the latest window (missing "
                "share, out of range, unseen categories, constant, type).",
                "short",
                _query("vigil_data_quality_flagged", "{{model_version}} {{feature}}"),
            )
        )
        .with_panel(
            _timeseries(
                "Data-quality shares",
                "Share of each window's rows missing, out of the training range, or of an "
                "unseen category, per feature.",
                "percentunit",
                _query("vigil_data_quality_share", "{{feature}} {{check}}"),
            )
        )
        .with_row(dash.Row("Candidate vs production"))
        .with_panel(
            _timeseries(
                "Candidate vs production quality (shadow or canary)",
                "A shadow's or canary's live quality beside production's, on the same labeled "
                "rows (vigil models shadow|canary TAG).",
                "short",
                _query(
                    "vigil_candidate_quality", "candidate {{candidate_version}} {{metric}}", "A"
                ),
                _query(
                    "vigil_model_quality and on (model_version) vigil_candidate_rows",
                    "production {{model_version}} {{metric}}",
                    "B",
                ),
                w=8,
            )
        )
        .with_panel(
            _timeseries(
                "Candidate agreement (shadow or canary)",
                "Share of equal labels (classifiers) or mean absolute difference (regressors) "
                "on the rows both models predicted.",
                "short",
                _query("vigil_candidate_agreement", "{{candidate_version}}"),
                w=8,
            )
        )
        .with_panel(
            _stat(
                "Candidate verdict (shadow or canary)",
                "The paired test on labeled rows: better, worse, or no series while undecided.",
                "none",
                _query("vigil_candidate_better", "{{candidate_version}}"),
                w=8,
            )
            .mappings(_state_mappings(("WORSE", "red"), ("Better", "green")))
            .thresholds(_thresholds((None, "red"), (1, "green")))
        )
    )


DASHBOARDS: dict[str, Callable[[], dash.Dashboard]] = {
    "vigil-service.json": service_dashboard,
    "vigil-drift.json": drift_dashboard,
}


def render_dashboard(builder: dash.Dashboard) -> str:
    """Stable JSON (sorted keys, trailing newline), so committed files diff cleanly."""
    model = builder.build()
    # The SDK leaves ids unset (rows get 0); Grafana links and edits panels by a unique id.
    for number, panel in enumerate(model.panels or [], start=1):
        panel.id_val = number
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def write_dashboards(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in DASHBOARDS.items():
        path = out_dir / name
        path.write_text(render_dashboard(make()), encoding="utf-8")
        paths.append(path)
    return paths


def panel_targets(dashboard: dict) -> list[tuple[dict, dict]]:
    """(panel, target) for every query of every non-row panel, rows' nested panels included."""
    pairs = []
    for panel in dashboard.get("panels", []):
        nested = panel.get("panels", []) if panel.get("type") == "row" else [panel]
        for inner in nested:
            for target in inner.get("targets") or []:
                pairs.append((inner, target))
    return pairs


def substitute_macros(
    expr: str, *, rate_interval: str = "1m", interval: str = "15s", range_: str = "1h"
) -> str:
    """Replace Grafana's macros with concrete durations so Prometheus can run the query."""
    replacements = {
        "$__rate_interval": rate_interval,
        "$__interval": interval,
        "$__range": range_,
    }
    # Longest first: $__range_s etc. are not used; $__rate_interval must win over $__interval.
    pattern = re.compile(
        "|".join(re.escape(k) for k in sorted(replacements, key=len, reverse=True))
    )
    return pattern.sub(lambda match: replacements[match.group(0)], expr)


# A panel whose title ends with one of these shows only that task's series: empty otherwise.
TASK_PANEL_SUFFIXES = {"classification": "(classifiers)", "regression": "(regressors)"}
# ... and one with this, only while a shadow or canary runs.
CANDIDATE_PANEL_SUFFIX = "(shadow or canary)"


def has_data(panel: dict, task: str | None, candidate: bool | None) -> bool:
    """Whether ``panel`` has data when a model of ``task`` is served, with or without a
    candidate (None: either, any panel)."""
    title = panel.get("title", "")
    if candidate is False and title.endswith(CANDIDATE_PANEL_SUFFIX):
        return False
    return task is None or not any(
        title.endswith(suffix) for name, suffix in TASK_PANEL_SUFFIXES.items() if name != task
    )


def dashboard_queries(
    directory: Path | None = None,
    *,
    rate_interval: str = "1m",
    interval: str = "15s",
    range_: str = "1h",
    task: str | None = None,
    candidate: bool | None = None,
) -> list[str]:
    """Every panel's PromQL from the dashboards (``directory``'s JSON files; by default as this
    generator makes them), macros substituted, in order; with ``task`` and ``candidate``, only
    the panels that have data for a model of that task, with or without a shadow or canary
    (``has_data``)."""
    if directory is None:
        texts = [render_dashboard(DASHBOARDS[name]()) for name in sorted(DASHBOARDS)]
    else:
        texts = [p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.json"))]
    queries = []
    for text in texts:
        for panel, target in panel_targets(json.loads(text)):
            if not has_data(panel, task, candidate):
                continue
            queries.append(
                substitute_macros(
                    target["expr"], rate_interval=rate_interval, interval=interval, range_=range_
                )
            )
    return queries


app = typer.Typer(add_completion=False, help="Generate Vigil's Grafana dashboards as JSON.")


@app.command()
def main(
    out: Annotated[
        Path, typer.Option("--out", help="Directory to write the JSON into.")
    ] = DASHBOARDS_DIR,
) -> None:
    """Write vigil-service.json and vigil-drift.json."""
    for path in write_dashboards(out):
        typer.echo(f"wrote {path}")


if __name__ == "__main__":
    app()
