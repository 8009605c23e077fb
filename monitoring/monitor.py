"""The long-running monitor: a check every interval, metrics and reports over HTTP.

A failed check (store unreachable, no production model) is counted as ``error`` and the loop
goes on, so the next run recovers by itself. Checks run in a worker thread: SIGINT/SIGTERM
stop the process at once even in the middle of a long check (reports are written atomically,
the log is only read and pruned in a transaction).
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from prometheus_client import CollectorRegistry

from monitoring.check import ERROR, Checker, CheckFailed, CheckResult
from monitoring.metrics import MonitorMetrics

log = logging.getLogger(__name__)


class Monitor:
    def __init__(self, settings, metrics: MonitorMetrics, *, checker: Checker | None = None):
        self.settings = settings
        self.metrics = metrics
        self.checker = checker or Checker(settings)
        self.last: dict = {}

    def run_once(self) -> CheckResult | None:
        """One check, recorded in the metrics; None when it could not run."""
        started = time.time()
        result, outcome = None, ERROR
        try:
            result = self.checker.check()
            outcome = result.outcome
            self.metrics.record_check(result.payload, result.reference_metrics)
        except CheckFailed as exc:
            log.error("drift check failed: %s", exc)
        except Exception:  # a bug must not stop the monitor; the next run tries again
            log.exception("drift check failed")
        duration = time.time() - started
        self.metrics.record_run(outcome, started, duration)
        self.last = {"outcome": outcome, "started": started, "duration_seconds": duration}
        if result is not None:
            p = result.payload
            log.info(
                "drift check of %s: %s, %s rows, drift share %s, drifted %s (%.1fs)",
                p["model_version"],
                outcome,
                p["window_rows"],
                p["drift_share"],
                p["drifted_features"],
                duration,
            )
        self.prune()
        return result

    def prune(self) -> None:
        days = self.settings.log_retention_days
        if not days:
            return
        try:
            removed = self.checker.log.prune(time.time() - days * 86400)
        except Exception as exc:  # retention can wait for the next run
            log.warning("inference log retention failed: %s", exc)
            return
        self.metrics.pruned.inc(removed)
        if removed:
            log.info("inference log retention: deleted %d rows older than %g days", removed, days)

    def loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.run_once()
            stop.wait(self.settings.drift_interval_seconds)


def serve(settings, *, registry: CollectorRegistry | None = None) -> None:
    """Run checks every ``drift_interval_seconds`` (the first at once) and serve HTTP until
    SIGINT or SIGTERM."""
    from monitoring.server import MonitorServer

    registry = registry or CollectorRegistry()
    monitor = Monitor(settings, MonitorMetrics(registry))
    server = MonitorServer(
        (settings.monitor_host, settings.monitor_port),
        registry,
        settings.reports_dir,
        health=lambda: dict(monitor.last),
    )
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        log.info("drift monitor: %s received, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server.start()
    log.info(
        "drift monitor on http://%s:%d (/metrics, /reports/latest), checking every %gs",
        settings.monitor_host,
        server.port,
        settings.drift_interval_seconds,
    )
    worker = threading.Thread(target=monitor.loop, args=(stop,), name="drift-checks", daemon=True)
    worker.start()
    while not stop.wait(1.0):
        if not worker.is_alive():  # cannot happen short of a crash; do not serve stale metrics
            log.error("drift check loop died; stopping")
            break
    server.stop()
    worker.join(timeout=2.0)  # a check in progress is abandoned (daemon thread)
    log.info("drift monitor stopped")
