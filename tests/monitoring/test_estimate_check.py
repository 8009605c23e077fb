"""Estimated quality and data quality through the check, the monitor's gauges and the running
monitor (issue 20), on the trained home's breast-cancer model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from typer.testing import CliRunner

from monitoring.check import Checker
from monitoring.drift import app
from monitoring.metrics import MonitorMetrics
from tests.conftest import free_port
from tests.monitoring.generators import breast_cancer_rows, fill_log
from tests.monitoring.quality_generators import inject_nulls
from vigil.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
METRICS = ("accuracy", "f1", "roc_auc")


def _check_json() -> dict:
    result = CliRunner().invoke(app, ["check", "--json", "--no-report"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_check_json_carries_the_estimate_and_clean_data_quality(production):
    _, log, bundle = production
    fill_log(log, bundle, breast_cancer_rows(1000, seed=3))
    payload = _check_json()
    estimated = payload["estimated_quality"]
    assert set(estimated) == {*METRICS, *(m + "_se" for m in METRICS)}
    for m in METRICS:
        assert 0.5 < estimated[m] <= 1.0 and 0 < estimated[m + "_se"] < 0.05
    # Rows of the data set itself (most of them training rows): near the held-out figures,
    # a little above them.
    assert abs(estimated["accuracy"] - bundle.metrics["accuracy"]) < 0.05
    assert payload["estimated_quality_note"].startswith("estimated accuracy ")
    quality = payload["data_quality"]
    assert set(quality) == set(bundle.schema.names)
    for q in quality.values():
        assert {"missing_share", "out_of_range_share", "unseen_share", "flagged"} <= set(q)
        assert q["flagged"] is False


def test_injected_nulls_flag_the_feature_in_json_and_gauges(production):
    settings, log, bundle = production
    rows = inject_nulls(breast_cancer_rows(1000, seed=5), "mean radius", 0.1, seed=5)
    fill_log(log, bundle, rows)
    result = Checker(settings, report=False, log=log).check()
    quality = result.payload["data_quality"]
    assert quality["mean radius"]["flagged"] is True
    assert quality["mean radius"]["flagged_checks"] == ["missing"]
    assert 0.05 < quality["mean radius"]["missing_share"] < 0.15
    assert [n for n, q in quality.items() if q["flagged"]] == ["mean radius"]
    metrics = MonitorMetrics(CollectorRegistry(), process=False)
    metrics.record_check(result.payload, result.reference_metrics)
    text = generate_latest(metrics.registry).decode()
    version = bundle.tag
    assert (
        f'vigil_data_quality_flagged{{feature="mean radius",model_version="{version}"}} 1.0' in text
    )
    assert f'vigil_model_quality_estimated{{metric="accuracy",model_version="{version}"}}' in text
    assert f'vigil_model_quality_estimated_se{{metric="roc_auc",model_version="{version}"}}' in text


def test_labeled_rows_export_estimate_minus_realized(production):
    settings, log, bundle = production
    rows = breast_cancer_rows(600, seed=9, with_target=True)
    ids = fill_log(log, bundle, rows.drop(columns="target"))
    log.add_feedback(zip(ids, rows["target"].astype(int).tolist(), strict=True))
    result = Checker(settings, report=False, log=log).check()
    errors = result.payload["estimate_error"]
    assert set(errors) == set(METRICS)
    quality, estimated = result.payload["quality"], result.payload["estimated_quality"]
    # The estimate on the labeled rows equals the window's here (the same 600 rows).
    assert errors["accuracy"] == pytest.approx(
        estimated["accuracy"] - quality["accuracy"], abs=1e-5
    )
    assert abs(errors["accuracy"]) < 4 * estimated["accuracy_se"] + 0.03
    metrics = MonitorMetrics(CollectorRegistry(), process=False)
    metrics.record_check(result.payload, result.reference_metrics)
    assert "vigil_quality_estimate_error{" in generate_latest(metrics.registry).decode()


def test_too_few_rows_has_no_estimate_and_drops_the_gauges(production):
    settings, log, bundle = production
    fill_log(log, bundle, breast_cancer_rows(1000, seed=11))
    checker = Checker(settings, report=False, log=log)
    metrics = MonitorMetrics(CollectorRegistry(), process=False)
    metrics.record_check(checker.check().payload, {})
    small = get_settings(drift_min_rows=5000)
    result = Checker(small, report=False, log=log).check()
    assert "estimated_quality" not in result.payload and "data_quality" not in result.payload
    metrics.record_check(result.payload, {})
    text = generate_latest(metrics.registry).decode()
    assert "vigil_model_quality_estimated{" not in text
    assert "vigil_data_quality_flagged{" not in text


def test_a_model_saved_without_an_estimator_still_checks(production):
    settings, log, bundle = production
    fill_log(log, bundle, breast_cancer_rows(300, seed=12))
    checker = Checker(settings, report=False, log=log)
    checker._estimators = {bundle.tag: None}  # as loaded for a model from before issue 20
    payload = checker.check().payload
    assert "estimated_quality" not in payload and "data_quality" in payload


def test_an_estimator_that_cannot_be_loaded_drops_the_estimate_not_the_check(
    production, monkeypatch
):
    """Loading the stored estimator fails (its artifact is not a joblib file): the window's
    estimate and the labeled rows' estimate error are dropped with a note; the drift verdict,
    the data quality and the realized quality stand."""
    import io

    import joblib

    from vigil.estimate import QualityEstimator

    def unloadable(cls, bundle):
        return joblib.load(io.BytesIO(b"not a joblib file"))

    monkeypatch.setattr(QualityEstimator, "of", classmethod(unloadable))
    settings, log, bundle = production
    rows = breast_cancer_rows(600, seed=21, with_target=True)
    ids = fill_log(log, bundle, rows.drop(columns="target"))
    log.add_feedback(zip(ids, rows["target"].astype(int).tolist(), strict=True))
    payload = Checker(settings, report=False, log=log).check().payload
    assert "estimated_quality" not in payload and "estimate_error" not in payload
    assert "data_quality" in payload and set(payload["quality"]) >= set(METRICS)
    assert "estimate failed" in payload["message"]
    assert "estimate error failed" in payload["message"]


def test_the_check_reports_the_estimates_support(production):
    settings, log, bundle = production
    fill_log(log, bundle, breast_cancer_rows(1000, seed=22))
    payload = Checker(settings, report=False, log=log).check().payload
    support = payload["estimated_quality_support"]
    assert set(support) >= {"vouched", "beyond_support_share", "effective_reference_rows"}
    assert isinstance(support["vouched"], bool)
    # ModelQualityDropEstimated reads it as a gauge: 0 beyond the reference's support.
    metrics = MonitorMetrics(CollectorRegistry(), process=False)
    for vouched in (True, False):
        beyond = {**payload, "estimated_quality_support": {**support, "vouched": vouched}}
        metrics.record_check(beyond, {})
        text = generate_latest(metrics.registry).decode()
        gauge = f'vigil_model_quality_estimate_vouched{{model_version="{bundle.tag}"}}'
        assert f"{gauge} {float(vouched)}" in text


@pytest.mark.integration
def test_running_monitor_exports_estimates_and_flags(production):
    _, log, bundle = production
    rows = inject_nulls(breast_cancer_rows(1000, seed=13), "mean texture", 0.1, seed=13)
    fill_log(log, bundle, rows)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VIGIL_MONITOR_PORT": str(port),
        "VIGIL_DRIFT_INTERVAL_SECONDS": "0.5",
        "BENTOML_DO_NOT_TRACK": "true",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitoring.drift", "run"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"
    needle = 'vigil_data_quality_flagged{feature="mean texture"'
    try:
        deadline, text = time.time() + 90, ""
        while time.time() < deadline and needle not in text:
            if proc.poll() is not None:
                pytest.fail(f"monitor exited {proc.returncode}:\n{proc.stdout.read()}")
            try:
                text = urllib.request.urlopen(url, timeout=2).read().decode()
            except OSError:
                pass
            time.sleep(0.3)
        assert needle in text, "no data-quality gauge in 90 s"
        flagged = [
            line for line in text.splitlines() if line.startswith(needle) and line.endswith(" 1.0")
        ]
        assert flagged, text
        estimated = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("vigil_model_quality_estimated{")
        ]
        assert len(estimated) == 3 and all(np.isfinite(estimated))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_report_shows_the_estimate_and_data_quality(production):
    _, log, bundle = production
    fill_log(log, bundle, breast_cancer_rows(400, seed=14))
    result = CliRunner().invoke(app, ["check", "--json"])
    assert result.exit_code == 0, result.stderr
    page = Path(json.loads(result.stdout)["report_path"]).read_text()
    assert "Estimated quality (no labels)" in page and "Data quality" in page
