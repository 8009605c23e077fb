"""Awkward stores and windows: empty, several model versions, time-bounded, sampled, a store
that fails and comes back, retention, and the long-running process's signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitoring.check import Checker
from monitoring.metrics import MonitorMetrics
from monitoring.monitor import Monitor
from tests.conftest import free_port
from tests.monitoring.generators import breast_cancer_rows, breast_cancer_sd, fill_log
from vigil.log.inference_log import InferenceLog
from vigil.settings import get_settings
from vigil.store.engine import engine_for

ROOT = Path(__file__).resolve().parents[2]


def test_fresh_store_without_tables_is_an_empty_window(trained_home):
    p = Checker(get_settings(), report=False).check().payload
    assert p["window_rows"] == 0 and p["drift_detected"] is None
    assert "only 0 logged rows" in p["message"]


def test_rows_of_other_versions_do_not_count(production):
    settings, log, bundle = production
    other = breast_cancer_rows(600, seed=21)
    for name in other.columns:
        other[name] += 2 * breast_cancer_sd(name)  # drifted, but not production's rows
    for start in (0, 300):  # interleaved in time with production's rows
        fill_log(log, bundle, other.iloc[start : start + 300], model_version="vigil-model:old")
        fill_log(log, bundle, breast_cancer_rows(200, seed=22 + start))
    p = Checker(settings, report=False, log=log).check().payload
    assert p["window_rows"] == 400
    assert p["drifted_features"] == [] and p["drift_detected"] is False


def test_time_window_keeps_only_recent_rows(production):
    settings, log, bundle = production
    fill_log(log, bundle, breast_cancer_rows(500, seed=23), created_at=time.time() - 7200)
    fill_log(log, bundle, breast_cancer_rows(150, seed=24))
    settings = get_settings(drift_window_minutes=30)
    p = Checker(settings, report=False, log=log).check().payload
    assert p["window_rows"] == 150 and p["drift_detected"] is not None


def test_large_window_is_sampled_and_says_so(production):
    settings, log, bundle = production
    rows = breast_cancer_rows(3000, seed=25)
    rows["mean radius"] += 0.5 * breast_cancer_sd("mean radius")
    fill_log(log, bundle, rows)
    settings = get_settings(drift_max_rows=1000)
    p = Checker(settings, report=False, log=log).check(window_rows=5000).payload
    assert p["sampled"] is True and p["window_rows"] == 3000 and p["tested_rows"] == 1000
    assert "uniform sample of 1000" in p["message"]
    assert p["drifted_features"] == ["mean radius"]


def test_missing_feature_key_counts_as_missing(production):
    settings, log, bundle = production
    rows = breast_cancer_rows(300, seed=26)
    rows["mean radius"] = None
    fill_log(log, bundle, rows)
    f = Checker(settings, report=False, log=log).check().payload["features"]["mean radius"]
    assert (f["score"], f["drifted"], f["missing_share"]) == (None, True, 1.0)


def test_a_failing_store_counts_an_error_and_the_next_run_recovers(production):
    settings, log, bundle = production
    fill_log(log, bundle, breast_cancer_rows(200, seed=27))
    log.close()
    # The registry shares the file: close its pooled connections too, so SQLite checkpoints
    # the WAL and the corruption below is all a reader sees.
    engine_for(settings.resolved_database_url, settings.log_timeout_seconds).dispose()
    db = Path(settings.resolved_database_url.split(":///", 1)[1])
    good = db.read_bytes()
    db.write_bytes(b"this is not a database" * 100)  # unreadable store
    monitor = Monitor(
        settings, MonitorMetrics(CollectorRegistry()), checker=Checker(settings, report=False)
    )
    assert monitor.run_once() is None
    assert monitor.metrics.runs.labels("error")._value.get() == 1
    db.write_bytes(good)
    result = monitor.run_once()
    assert result.outcome == "ok" and result.payload["window_rows"] == 200
    assert monitor.metrics.runs.labels("ok")._value.get() == 1


def test_retention_prunes_old_rows_each_run(production):
    settings, log, bundle = production
    fill_log(log, bundle, breast_cancer_rows(120, seed=28), created_at=time.time() - 3 * 86400)
    fill_log(log, bundle, breast_cancer_rows(110, seed=29))
    settings = get_settings(log_retention_days=1)
    monitor = Monitor(
        settings,
        MonitorMetrics(CollectorRegistry()),
        checker=Checker(settings, report=False, log=log),
    )
    monitor.run_once()
    assert log.count(bundle.tag) == 110
    assert monitor.metrics.pruned._value.get() == 120


def _start_monitor(env_extra: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VIGIL_MONITOR_PORT": str(port),
        **env_extra,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitoring.drift", "run"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}/metrics"


def _wait_for(proc, url: str, needle: str, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"monitor exited {proc.returncode}:\n{proc.stdout.read()}")
        try:
            text = urllib.request.urlopen(url, timeout=2).read().decode()
            if needle in text:
                return text
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"no {needle!r} at {url} in {timeout}s:\n{proc.stdout.read()}")


def _stop(proc, sig) -> float:
    started = time.time()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"monitor ignored {sig!r}:\n{proc.stdout.read()}")
    return time.time() - started


@pytest.mark.integration
def test_run_survives_errors_and_stops_on_sigint(vigil_home):
    # No production model: every run is an error, and the process keeps going.
    proc, url = _start_monitor({"VIGIL_DRIFT_INTERVAL_SECONDS": "0.3"})
    _wait_for(proc, url, 'vigil_drift_runs_total{outcome="error"} 3.0')
    assert _stop(proc, signal.SIGINT) < 3
    assert proc.returncode == 0
    assert "no production model" in proc.stdout.read()


@pytest.mark.integration
def test_run_checks_at_start_serves_the_report_and_stops_on_sigterm(production):
    settings, log, bundle = production
    fill_log(log, bundle, breast_cancer_rows(200, seed=30))
    proc, url = _start_monitor({"VIGIL_DRIFT_INTERVAL_SECONDS": "3600"})
    text = _wait_for(proc, url, 'vigil_drift_runs_total{outcome="ok"} 1.0')
    assert f'vigil_drift_window_rows{{model_version="{bundle.tag}"}} 200.0' in text
    # The report follows the verdict. Until it is written, the alerts' link asks to retry
    # (the first report imports Evidently: seconds, over a minute on two loaded cores).
    early = httpx.get(url.replace("/metrics", "/reports/latest"), timeout=10)
    assert early.status_code == 200 or (
        early.status_code == 503 and early.headers["retry-after"]
    ), (early.status_code, early.text)
    # Once written, the check's report_path names it.
    _wait_for(proc, url, 'vigil_drift_reports_total{outcome="written"} 1.0', timeout=180)
    latest = urllib.request.urlopen(url.replace("/metrics", "/reports/latest"), timeout=10)
    assert latest.status == 200 and b"Vigil drift check" in latest.read()
    name = latest.headers["Content-Location"].rsplit("/", 1)[1]
    health = json.loads(urllib.request.urlopen(url.replace("/metrics", "/healthz")).read())
    assert health["leader"] is True
    assert health["check"]["report"] == f"/reports/{name}"  # a URL, not a path on disk
    assert _stop(proc, signal.SIGTERM) < 3
    assert proc.returncode == 0


def _bulk_log(settings, model_version: str, rows, n: int, request_rows: int = 100) -> None:
    """``n`` logged instances cycling through ``rows``, ``request_rows`` per request, as the
    service logs them (``write`` sends a bulk load a slice at a time)."""
    from vigil.log.inference_log import LogRecord
    from vigil.log.prediction_ids import new_request_id
    from vigil.schema import record_columns

    log = InferenceLog.from_settings(settings)
    log.create_schema()
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    # Twice over, so that any request's rows are one slice of each column.
    columns = record_columns(records + records[:request_rows])
    now = time.time()

    def requests():
        for first in range(0, n, request_rows):
            size = min(request_rows, n - first)
            at = now - (n - first) * 1e-3
            start = first % len(records)
            yield LogRecord(
                request_id=new_request_id(at),
                model_version=model_version,
                created_at=at,
                instances={name: values[start : start + size] for name, values in columns.items()},
                predictions=[1] * size,
                probabilities={"0": [0.4] * size, "1": [0.6] * size},
            )

    log.write(requests())
    log.close()


# Runs a module and reports its own peak RSS at exit. Not ru_maxrss of a child: Linux carries
# the parent's high-water mark (here pytest's) into the child across exec.
_REPORT_PEAK = """
import atexit, runpy, sys

def peak():
    with open("/proc/self/status") as fh:
        kb = next(line.split()[1] for line in fh if line.startswith("VmHWM"))
    sys.stderr.write(f"\\nVmHWM_KB={kb}\\n")

atexit.register(peak)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@pytest.mark.integration
def test_a_million_row_log_is_read_as_a_bounded_sample(vigil_home, mixed_model_home):
    import json

    from tests.monitoring.generators import mixed_frame
    from vigil.registry.store import Registry

    mixed_model_home(600, into=vigil_home)
    settings = get_settings()
    tag = Registry(settings).production_tag()
    _bulk_log(settings, tag, mixed_frame(20_000, seed=31).drop(columns="target"), 1_000_000)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["monitoring.drift", "check", "--json", "--window-rows", "1000000"]
    proc = subprocess.run(
        [sys.executable, "-c", _REPORT_PEAK, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    peak_mb = int(proc.stderr.rsplit("VmHWM_KB=", 1)[1].split()[0]) / 1024
    p = json.loads(proc.stdout)
    assert p["window_rows"] == 1_000_000 and p["sampled"] is True
    assert p["tested_rows"] == settings.drift_max_rows
    assert "uniform sample" in p["message"] and p["report_path"]
    assert peak_mb < 1024, f"peak RSS {peak_mb:.0f} MB"
    print(f"\n[1M rows] peak RSS of the check: {peak_mb:.0f} MB")
