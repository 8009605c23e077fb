"""The monitor's schedule: a check once a window of new rows is logged, never sooner than the
minimum interval; the report comes after the verdict and fills in its report_path."""

from __future__ import annotations

import json
import time

from prometheus_client import CollectorRegistry, generate_latest

from monitoring.check import Checker
from monitoring.metrics import MonitorMetrics
from monitoring.monitor import Monitor, ReportWorker
from tests.monitoring.generators import breast_cancer_rows, fill_log
from vigil.settings import get_settings

# Long enough that a slow check and write on a loaded machine stay inside it; the test moves
# the last check's time back instead of waiting it out.
MIN_INTERVAL = 30.0


def test_new_rows_trigger_a_check_after_the_minimum_interval(production):
    _, log, bundle = production
    settings = get_settings(
        drift_window_rows=200, drift_min_interval_seconds=MIN_INTERVAL, drift_interval_seconds=3600
    )
    metrics = MonitorMetrics(CollectorRegistry(), process=False)
    monitor = Monitor(settings, metrics, checker=Checker(settings, report=False, log=log))
    monitor.reports = ReportWorker(settings, metrics, on_done=monitor.on_report)
    monitor.reports.start()
    assert metrics.leader._value.get() == 1
    assert monitor.due()  # the first check runs at once
    monitor._checked_at = time.monotonic()
    monitor.run_once()
    fill_log(log, bundle, breast_cancer_rows(250, seed=4))
    assert not monitor.due()  # a full window, but within the minimum interval
    monitor._checked_at -= MIN_INTERVAL  # the interval has passed
    assert monitor.due()
    monitor._checked_at = time.monotonic()
    result = monitor.run_once()
    assert result.payload["window_rows"] == 200 and result.payload["report_path"] is None
    monitor._checked_at -= MIN_INTERVAL
    assert not monitor.due()  # no new rows since
    deadline = time.monotonic() + 60
    while monitor.latest["report_path"] is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert monitor.latest["report_path"].endswith(".html")
    assert metrics.reports.labels("written")._value.get() == 1
    # /healthz names the report by its URL: no path of the pod's disk.
    health = json.dumps(monitor.health())
    assert str(settings.home_dir) not in health and '"report_path"' not in health
    name = monitor.latest["report_path"].rsplit("/", 1)[-1]
    assert monitor.health()["check"]["report"] == f"/reports/{name}"
    monitor.reports.stop()


def _production_since(settings, when: float) -> None:
    from vigil.registry.store import Registry
    from vigil.store.tables import POINTER_ID

    registry = Registry(settings)
    p = registry.tables.production
    with registry.engine.begin() as conn:
        conn.execute(p.update().where(p.c.id == POINTER_ID).values(changed_at=when))


def test_too_few_rows_on_a_long_promoted_model_is_not_a_success(production):
    """A model production for longer than its window takes to fill, with too few rows (one
    no replica serves): the check says insufficient_data, and DriftCheckStale's clock runs."""
    _, log, bundle = production
    settings = get_settings(drift_window_fill_seconds=600, drift_min_rows=100)
    metrics = MonitorMetrics(CollectorRegistry(), process=False)
    monitor = Monitor(settings, metrics, checker=Checker(settings, report=False, log=log))

    _production_since(settings, time.time() - 60)  # promoted a minute ago: still filling
    assert monitor.run_once().outcome == "insufficient_data"
    first_success = metrics.last_success._value.get()
    assert first_success > 0
    assert metrics.production.labels(bundle.tag)._value.get() == 1

    _production_since(settings, time.time() - 3600)  # an hour, and still no traffic
    assert monitor.run_once().outcome == "insufficient_data"
    assert metrics.last_success._value.get() == first_success
    assert metrics.runs.labels("insufficient_data")._value.get() == 2

    metrics.set_leader(False, None)  # a standby exports no production tag
    assert "vigil_production_model_info{" not in generate_latest(metrics.registry).decode()


def test_the_leader_collects_the_registry_once_a_day(production):
    from monitoring.housekeeping import COLLECT_SECONDS
    from vigil.registry.store import Registry

    settings, log, bundle = production
    settings = get_settings(registry_keep_models=1)
    registry = Registry(settings)
    old = [registry.save(bundle.pipeline, bundle.contract, bundle.reference) for _ in range(2)]
    newest = registry.save(bundle.pipeline, bundle.contract, bundle.reference)
    metrics = MonitorMetrics(CollectorRegistry(), process=False)
    monitor = Monitor(settings, metrics, checker=Checker(settings, report=False, log=log))
    now = time.time()
    monitor.housekeeping.collect_registry(now)
    assert set(registry.tags()) == {bundle.tag, newest}
    spare = registry.save(bundle.pipeline, bundle.contract, bundle.reference)
    monitor.housekeeping.collect_registry(now + 60)  # not again the same day
    assert spare in registry.tags() and not set(old) & set(registry.tags())
    monitor.housekeeping.collect_registry(now + COLLECT_SECONDS)
    assert set(registry.tags()) == {bundle.tag, spare}
