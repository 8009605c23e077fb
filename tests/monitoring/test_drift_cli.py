"""``python -m monitoring.drift check``: the contract's JSON, exit codes 0/1/2, clear failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitoring.drift import app
from tests.conftest import free_port
from tests.monitoring.generators import breast_cancer_rows, breast_cancer_sd, fill_log
from vigil.settings import get_settings

CONTRACT_KEYS = [
    "model_version", "window_rows", "reference_rows", "sampled", "drift_detected",
    "drift_share", "drifted_features", "features", "prediction_drift", "report_path",
    "checked_at", "message",
]  # fmt: skip
FEATURE_KEYS = {"method", "score_kind", "score", "threshold", "drifted", "missing_share"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def logged(production):
    """Log rows for the production model: ``logged(n, shift_features=0)``."""
    _, log, bundle = production

    def write(n: int, shift: int = 0, seed: int = 0):
        rows = breast_cancer_rows(n, seed)
        for name in rows.columns[:shift]:
            rows[name] += breast_cancer_sd(name)
        return fill_log(log, bundle, rows)

    return write


def _invoke(*args: str):
    result = CliRunner().invoke(app, ["check", *args])
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_json_is_exactly_the_contract_object_with_a_report(logged):
    logged(1000)
    result = _invoke("--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)  # one object, nothing else on stdout
    assert list(payload)[: len(CONTRACT_KEYS)] == CONTRACT_KEYS
    assert payload["window_rows"] == 1000 and payload["sampled"] is False
    assert payload["drift_detected"] is False and payload["message"] is None
    assert len(payload["features"]) == 30
    for f in payload["features"].values():
        assert FEATURE_KEYS <= set(f)
    assert set(payload["prediction_drift"]) >= {"method", "score_kind", "score", "drifted"}
    report = Path(payload["report_path"])
    assert report.is_file() and report.parent == get_settings().reports_dir
    assert "quality" not in payload  # no labels yet


def test_fail_on_drift_exits_1_only_on_dataset_drift(logged):
    logged(1000, shift=20)
    assert _invoke("--json", "--no-report").exit_code == 0
    result = _invoke("--json", "--no-report", "--fail-on-drift")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["drift_detected"] is True and payload["report_path"] is None


def test_fail_on_drift_without_drift_exits_0(logged):
    logged(300)
    assert _invoke("--json", "--no-report", "--fail-on-drift").exit_code == 0


def test_too_few_rows_says_how_many_are_needed(logged):
    logged(40)
    result = _invoke("--json", "--fail-on-drift")
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["window_rows"] == 40
    assert payload["drift_detected"] is None and payload["drift_share"] is None
    assert payload["drifted_features"] == [] and payload["features"] == {}
    assert payload["report_path"] is None
    assert "at least 100" in payload["message"] and "only 40" in payload["message"]


def test_window_rows_option_and_human_output(logged):
    logged(500)
    result = _invoke("--window-rows", "200", "--no-report")
    assert result.exit_code == 0, result.stderr
    assert "window 200 rows" in result.stdout and "no dataset drift" in result.stdout


def test_unreachable_store_exits_2_with_the_reason(trained_home, monkeypatch):
    monkeypatch.setenv("VIGIL_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    monkeypatch.setenv("VIGIL_LOG_TIMEOUT_SECONDS", "2")
    result = _invoke("--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "could not run" in result.stderr and "connection failed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.integration
def test_no_production_model_exits_2_from_the_real_entry_point(vigil_home):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "monitoring.drift", "check", "--json"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "no production model" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_lists_both_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "check" in result.stdout and "run" in result.stdout
    result = CliRunner().invoke(app, ["check", "--help"])
    assert "--fail-on-drift" in result.stdout and "--window-rows" in result.stdout


def test_human_summary_comes_first_then_the_report(logged):
    logged(500, shift=20)
    result = _invoke()
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("DRIFT DETECTED"), result.stdout
    assert any(line.startswith("  drifted: ") for line in lines)
    assert any(line.startswith("  and 15 more: ") for line in lines), result.stdout
    assert any(line.startswith("data quality") for line in lines), result.stdout
    assert lines[-2] == "report: writing the HTML report…"
    path = Path(lines[-1].removeprefix("report: "))
    assert path.suffix == ".html" and path.is_file()


def test_a_failing_report_leaves_the_summary_and_says_why(logged, monkeypatch):
    from monitoring.check import ReportJob

    def broken(self, settings):
        raise OSError("disk full")

    monkeypatch.setattr(ReportJob, "render", broken)
    logged(500)
    result = _invoke()
    assert result.exit_code == 0, result.stderr
    assert "no dataset drift" in result.stdout
    assert result.stdout.splitlines()[-1] == "report: report failed: OSError: disk full"


def test_no_report_never_mentions_one(logged):
    logged(500)
    result = _invoke("--no-report")
    assert result.exit_code == 0, result.stderr
    assert "report:" not in result.stdout
