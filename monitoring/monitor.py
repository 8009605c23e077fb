"""The long-running monitor: checks driven by data, metrics and reports over HTTP.

A check runs as soon as ``drift_window_rows`` new rows of the production model are logged
since the last one (counted cheaply, ``vigil.log.progress``), at least every
``drift_interval_seconds``, never more often than ``drift_min_interval_seconds``, and at once
when production moves to another version or this monitor becomes leader. Only the leader
checks (``monitoring.leader``), and only the leader keeps the log and the registry tidy
(``monitoring.housekeeping``). The verdict, JSON and gauges come first; the HTML report is
rendered afterwards by one worker thread (``ReportWorker``), so Evidently never delays a
verdict.

A failed check (store unreachable, no production model) is counted as ``error`` and the loop
goes on, so the next run recovers by itself. Checks run in a worker thread: SIGINT/SIGTERM
stop the process at once even in the middle of a long check (reports are written atomically,
the log is only read and pruned in a transaction).
"""

from __future__ import annotations

import copy
import logging
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitoring.check import (
    ERROR,
    INSUFFICIENT,
    Checker,
    CheckFailed,
    CheckResult,
    ReportJob,
    add_note,
    report_failure,
)
from monitoring.housekeeping import Housekeeper
from monitoring.leader import AlwaysLeader, leadership
from monitoring.metrics import MonitorMetrics
from vigil.log.inference_log import InferenceLogError
from vigil.log.progress import LogProgress, NewRows

log = logging.getLogger(__name__)

# How often the loop looks for new rows: the longest a full window waits for its check.
TICK_SECONDS = 1.0


class ReportWorker:
    """Renders reports one at a time in a thread of its own. At most one is in flight and one
    waits; a newer check's report replaces the waiting one (counted ``superseded``)."""

    def __init__(self, settings, metrics: MonitorMetrics, on_done=None, fence=None):
        self.settings = settings
        self.metrics = metrics
        self.on_done = on_done or (lambda _job, _path, _error: None)
        # Asked just before each render (the leader's confirm): a monitor that lost its lock
        # since the check renders nothing.
        self.fence = fence or (lambda: True)
        self._pending: ReportJob | None = None
        self._cond = threading.Condition()
        self._stopped = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="drift-reports", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: ReportJob) -> None:
        with self._cond:
            if self._pending is not None:
                self.metrics.reports.labels("superseded").inc()
            self._pending = job
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return self._pending is None and not self._busy

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                job, self._pending, self._busy = self._pending, None, True
            if not self.fence():
                with self._cond:
                    self._busy = False
                continue
            started = time.perf_counter()
            path, error = None, None
            try:
                path = str(job.render(self.settings).path)
                self.metrics.reports.labels("written").inc()
            except Exception as exc:  # the verdict stands without its HTML
                log.warning("drift report failed", exc_info=True)
                error = report_failure(exc)
                self.metrics.reports.labels("failed").inc()
            self.metrics.report_duration.set(time.perf_counter() - started)
            try:
                self.on_done(job, path, error)
            finally:
                with self._cond:
                    self._busy = False


class Monitor:
    def __init__(
        self,
        settings,
        metrics: MonitorMetrics,
        *,
        checker: Checker | None = None,
        leader=None,
    ):
        self.settings = settings
        self.metrics = metrics
        self.checker = checker or Checker(settings, report=False)
        self.leader = leader or AlwaysLeader()
        # A candidate verdict is stored under the same fence as exports and pruning.
        self.checker.fence = self.leader.confirm
        self.last: dict = {}
        self.latest: dict | None = None  # the newest check's JSON (report_path filled later)
        self.reports: ReportWorker | None = None
        # Held while gauges change and while /metrics is read: a scrape sees one check whole.
        self.lock = threading.RLock()
        self._new_rows: NewRows | None = None  # made on first use: the log opens lazily
        self._checked_version: str | None = None
        self._checked_at: float | None = None  # time.monotonic() of the last check
        self.housekeeping = Housekeeper(
            settings, lambda: self.checker.log, metrics.pruned, lambda: self.leader.confirm()
        )
        metrics.set_leader(self.leader.is_leader, self.leader.since)

    @property
    def new_rows(self) -> NewRows:
        if self._new_rows is None:
            self._new_rows = NewRows(LogProgress(self.checker.log))
        return self._new_rows

    # -- leadership --------------------------------------------------------------------

    def on_leadership(self, leading: bool) -> None:
        with self.lock:
            self.metrics.set_leader(leading, self.leader.since)
            if not leading:
                self._checked_at = None  # a new leadership starts with a check

    # -- checks ------------------------------------------------------------------------

    def run_once(self) -> CheckResult | None:
        """One check, recorded in the metrics; None when it could not run."""
        started = time.time()
        result, outcome, success = None, ERROR, False
        try:
            pointer = self.checker.production_pointer()
            version = pointer.tag
            with self.lock:
                if self.leader.is_leader:
                    self.metrics.set_production(version)
            if version is not None:
                # Before the window is read: rows logged during the check count as new.
                try:
                    self.checker.ensure_schema()
                    self.new_rows.reset(version, self.new_rows.progress.newest(version))
                except InferenceLogError as exc:
                    raise CheckFailed(str(exc)) from None
            result = self.checker.check()
            outcome = result.outcome
            success = outcome != INSUFFICIENT or not self._overdue(pointer)
            with self.lock:
                # Fenced: the lock is confirmed on its own session just before the export. A
                # leader whose session was killed learns it here, not at its next poll, so it
                # exports nothing after a standby took over.
                if not self.leader.confirm():
                    return None
                self.metrics.record_check(result.payload, result.reference_metrics)
        except CheckFailed as exc:
            log.error("drift check failed: %s", exc)
        except Exception:  # a bug must not stop the monitor; the next run tries again
            log.exception("drift check failed")
        duration = time.time() - started
        with self.lock:
            self.metrics.record_run(outcome, started, duration, success=success)
        self.last = {"outcome": outcome, "started": started, "duration_seconds": duration}
        if result is not None:
            p = result.payload
            self._checked_version = p["model_version"]
            self.latest = p
            if result.report_job is not None and self.reports is not None:
                # The report shows the verdict as it was; its path lands in this check's JSON.
                job = replace(result.report_job, summary=copy.deepcopy(p), check=p)
                self.reports.submit(job)
            log.info(
                "drift check of %s: %s, %s rows, drift share %s, drifted %s (%.3fs)",
                p["model_version"],
                outcome,
                p["window_rows"],
                p["drift_share"],
                p["drifted_features"],
                duration,
            )
        if self.leader.confirm():  # the same fence before deleting anything
            self.housekeeping.prune()
        return result

    def _overdue(self, pointer) -> bool:
        """Production has been production longer than its window takes to fill: too few rows
        now means it gets no traffic, not that it is new."""
        since = pointer.changed_at
        overdue = (
            since is not None and time.time() - since > self.settings.drift_window_fill_seconds
        )
        if overdue:
            log.warning(
                "%s has been production for %.0f s and still has too few rows for a check; "
                "this counts as a failed check (DriftCheckStale)",
                pointer.tag, time.time() - since,
            )  # fmt: skip
        return overdue

    def on_report(self, job: ReportJob, path: str | None, error: str | None) -> None:
        check = job.check
        if check is None:
            return
        if path is not None:
            check["report_path"] = path
        elif error is not None:
            check["message"] = add_note(check["message"], error)

    def due(self) -> bool:
        """Whether a check should run now (see the module's docstring)."""
        s = self.settings
        if self._checked_at is None:
            return True
        elapsed = time.monotonic() - self._checked_at
        if elapsed >= s.drift_interval_seconds:
            return True
        if elapsed < s.drift_min_interval_seconds:
            return False
        try:
            version = self.checker.production_tag()
            if version is None:
                return False  # the interval retries (and reports the error)
            if version != self._checked_version:
                return True
            return self.new_rows.reached(version, s.drift_window_rows)
        except Exception as exc:  # the store is down: the interval's check reports it
            log.debug("counting new rows failed: %s", exc)
            return False

    def loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if self.leader.is_leader:
                self.housekeeping.tick()
            if self.leader.is_leader and self.due():
                self._checked_at = time.monotonic()
                self.run_once()
            stop.wait(TICK_SECONDS)

    def health(self) -> dict:
        return {**self.last, "leader": self.leader.is_leader, "check": _public(self.latest)}


def _public(check: dict | None) -> dict | None:
    """The check as /healthz shows it: the report by its URL on this server, not by the
    absolute path it has on the pod's disk."""
    if check is None or not check.get("report_path"):
        return check
    name = Path(check["report_path"]).name
    return {k: v for k, v in check.items() if k != "report_path"} | {"report": f"/reports/{name}"}


class _LockedCollector:
    """The metrics as /metrics reads them: under the monitor's lock, so a scrape never sees
    half of a check's gauges (a drift verdict without its features)."""

    def __init__(self, collector: CollectorRegistry, lock):
        self.collector, self.lock = collector, lock

    def collect(self):
        with self.lock:
            return list(self.collector.collect())


def serve(settings, *, metrics_registry: CollectorRegistry | None = None) -> None:
    """Check as the data arrives (the first check at once when leading) and serve HTTP until
    SIGINT or SIGTERM."""
    from monitoring.server import MonitorServer

    metrics_registry = metrics_registry or CollectorRegistry()
    metrics = MonitorMetrics(metrics_registry)
    monitor = Monitor(settings, metrics, leader=leadership(settings))
    monitor.reports = ReportWorker(
        settings, metrics, on_done=monitor.on_report, fence=monitor.leader.confirm
    )
    server = MonitorServer(
        (settings.monitor_host, settings.monitor_port),
        _LockedCollector(metrics_registry, monitor.lock),
        settings.reports_dir,
        health=monitor.health,
        report_pending=lambda: not monitor.reports.idle(),
    )
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        log.info("drift monitor: %s received, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server.start()
    log.info(
        "drift monitor on http://%s:%d (/metrics, /reports/latest): a check every %d new rows, "
        "at most every %gs, at least every %gs",
        settings.monitor_host,
        server.port,
        settings.drift_window_rows,
        settings.drift_min_interval_seconds,
        settings.drift_interval_seconds,
    )
    monitor.reports.start()
    monitor.leader.start(monitor.on_leadership)
    worker = threading.Thread(target=monitor.loop, args=(stop,), name="drift-checks", daemon=True)
    worker.start()
    while not stop.wait(1.0):
        if not worker.is_alive():  # cannot happen short of a crash; do not serve stale metrics
            log.error("drift check loop died; stopping")
            break
    server.stop()
    monitor.leader.stop()  # frees the lock for a standby at once
    monitor.reports.stop()
    worker.join(timeout=2.0)  # a check in progress is abandoned (daemon thread)
    log.info("drift monitor stopped")
