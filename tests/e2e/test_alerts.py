"""End to end: real service, monitor, Prometheus and Alertmanager; alerts arrive at a webhook.

One stack is shared by the tests of this module, which run in order: normal traffic (no drift
alert), one feature drifted (FeatureDriftDetected for it, no DataDriftDetected), most features
drifted (DataDriftDetected linking to the report), the dashboards' queries, a locked inference
log (InferenceLogFailures), the monitor stopped (DriftMonitorDown), the service stopped
(PredictionServiceDown). Intervals are shortened through the same templates `make run` uses:
1 s scrape and evaluation, every `for:` 0 s, a feature drifting alone alerting after 3 s, 1 s
Alertmanager grouping, a check every 2 s.

The time from the start of each fault (drifted traffic, locked log, stopped process) to the
alert's arrival at the webhook is printed (`pytest -s`) and written to
``<tmp>/alert-timings.json``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.support.alerting import Prometheus, Webhook, start_alertmanager, start_prometheus
from tests.support.processes import Proc, base_env, http_ok, stop_all, wait_until
from vigil.render.alerting import render_configs
from vigil.render.dashboards import dashboard_queries
from vigil.stack.traffic import Drift, drifted_features, make_rows, send

pytestmark = pytest.mark.integration

WINDOW_ROWS = 300
MIN_ROWS = 100
CHECK_EVERY_SECONDS = 2
ALERT_TIMEOUT = 60.0
ONE_FEATURE = "mean texture"
DRIFT_ALERTS = ("DataDriftDetected", "FeatureDriftDetected")


@dataclass
class Stack:
    home: Path
    tmp: Path
    service_url: str
    monitor_url: str
    prometheus: Prometheus
    alertmanager_url: str
    webhook: Webhook
    procs: dict[str, Proc]
    model_version: str = ""
    schema: object = None
    reference: object = None
    timings: dict[str, float] = field(default_factory=dict)

    def wait(self, check, what: str, timeout: float = ALERT_TIMEOUT):
        return wait_until(check, timeout, what, [p for p in self.procs.values() if p.alive()])

    def logs(self) -> str:
        return "\n".join(p.describe() for p in self.procs.values())

    def traffic(self, rows: list[dict], label: str | None = None) -> None:
        started = time.monotonic()
        tally = asyncio.run(send(self.service_url, rows, batch=10, concurrency=4))
        assert tally.ok == len(rows), (tally, self.logs())
        if label:
            self.timings[f"{label} traffic ({len(rows)} rows) sent in"] = round(
                time.monotonic() - started, 2
            )

    def alert_after(self, name: str, start: float, **labels) -> float:
        """Wait for the first firing ``name`` with ``labels`` at the webhook after ``start``;
        record and return the seconds it took."""
        hit = self.wait(
            lambda: self.webhook.first(name, since=start, **labels),
            f"{name} {labels or ''} at the webhook (received so far: {self.webhook.names()})",
        )
        took = round(hit.at - start, 2)
        key = name + "".join(f" {k}={v}" for k, v in labels.items() if k != "model_version")
        self.timings[key] = took
        print(f"[e2e] {key}: {took:.1f} s from the start of the fault to the webhook")
        return took


def _start_stack(tmp: Path, home: Path, webhook: Webhook) -> Stack:
    ports = {name: free_port() for name in ("service", "monitor", "prometheus", "alertmanager")}
    monitor_url = f"http://127.0.0.1:{ports['monitor']}"
    configs = render_configs(
        tmp / "config",
        service_target=f"127.0.0.1:{ports['service']}",
        monitor_target=f"127.0.0.1:{ports['monitor']}",
        alertmanager_target=f"127.0.0.1:{ports['alertmanager']}",
        webhook_url=webhook.url,
        scrape_interval="1s",
        evaluation_interval="1s",
        for_all="0s",
        feature_alone_for="3s",
        group_wait="1s",
        drift_group_wait="1s",
        group_interval="1s",
        repeat_interval="1h",
        report_base_url=f"{monitor_url}/reports/",
    )
    env = base_env(
        home=home,
        host="127.0.0.1",
        port=ports["service"],
        monitor_host="127.0.0.1",
        monitor_port=ports["monitor"],
        workers=1,
        log_timeout_seconds=0.5,
        drift_interval_seconds=CHECK_EVERY_SECONDS,
        drift_window_rows=WINDOW_ROWS,
        drift_min_rows=MIN_ROWS,
        reports_keep=3,
    )
    logs = tmp / "logs"
    logs.mkdir()
    procs: dict[str, Proc] = {}
    stack = Stack(
        home=home,
        tmp=tmp,
        service_url=f"http://127.0.0.1:{ports['service']}",
        monitor_url=monitor_url,
        prometheus=Prometheus(f"http://127.0.0.1:{ports['prometheus']}"),
        alertmanager_url=f"http://127.0.0.1:{ports['alertmanager']}",
        webhook=webhook,
        procs=procs,
    )

    def start(name: str, argv: list[str]) -> None:
        procs[name] = Proc(name, argv, logs / f"{name}.log", env)

    procs["alertmanager"] = start_alertmanager(
        configs["alertmanager"],
        tmp / "alertmanager",
        ports["alertmanager"],
        logs / "alertmanager.log",
        env,
    )
    procs["prometheus"] = start_prometheus(
        configs["prometheus"],
        tmp / "prometheus",
        ports["prometheus"],
        logs / "prometheus.log",
        "--rules.alert.resend-delay=1s",
        env=env,
    )
    start("service", [sys.executable, "-m", "service", "serve"])
    start("monitor", [sys.executable, "-m", "monitoring.drift", "run"])
    return stack


@pytest.fixture(scope="module")
def stack(trained_home_template, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    home = tmp / "vigil-home"
    shutil.copytree(trained_home_template, home)
    webhook = Webhook()
    stack = None
    try:
        stack = _start_stack(tmp, home, webhook)
        yield stack
    finally:
        if stack is not None:
            stop_all(stack.procs.values())
            path = tmp / "alert-timings.json"
            path.write_text(json.dumps(stack.timings, indent=2) + "\n")
            print(f"\n[e2e] fault -> webhook seconds ({path}): {json.dumps(stack.timings)}")
        webhook.close()


@pytest.fixture(autouse=True)
def _logs_on_failure(request, stack):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(stack.logs())
        print(f"webhook received: {stack.webhook.received}")


def test_stack_starts_and_prometheus_scrapes_both(stack):
    t0 = time.monotonic()
    stack.wait(lambda: http_ok(f"{stack.alertmanager_url}/-/ready"), "Alertmanager", 30)
    stack.wait(lambda: http_ok(f"{stack.prometheus.base}/-/ready"), "Prometheus", 30)
    stack.wait(lambda: http_ok(f"{stack.service_url}/readyz"), "the service's /readyz", 120)
    stack.wait(lambda: http_ok(f"{stack.monitor_url}/metrics"), "the monitor's /metrics", 60)
    print(f"[e2e] stack ready in {time.monotonic() - t0:.1f} s")

    def both_up():
        up = stack.prometheus.values("up")
        return {dict(k)["job"] for k, v in up.items() if v == 1} >= {
            "vigil-service",
            "vigil-monitor",
        }

    stack.wait(both_up, "Prometheus to scrape the service and the monitor", 30)

    from vigil.registry.store import Registry
    from vigil.settings import get_settings

    bundle = Registry(get_settings(home=stack.home)).load_production()
    stack.model_version, stack.schema, stack.reference = bundle.tag, bundle.schema, bundle.reference
    info = stack.prometheus.values("vigil_model_info")
    assert {dict(k).get("model_version") for k in info} == {bundle.tag}, info


def test_normal_traffic_raises_no_drift_alert(stack):
    # Labeled rows first (labels = the model's own answers), so quality figures exist.
    rows = make_rows(stack.reference, stack.schema, 50, seed=11)
    answer = httpx.post(f"{stack.service_url}/predict", json={"instances": rows}, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    labels = [
        {"prediction_id": pid, "label": pred}
        for pid, pred in zip(body["prediction_ids"], body["predictions"], strict=True)
    ]
    feedback = httpx.post(f"{stack.service_url}/feedback", json={"labels": labels}, timeout=30)
    assert feedback.status_code == 200 and feedback.json()["accepted"] == 50, feedback.text

    stack.traffic(make_rows(stack.reference, stack.schema, WINDOW_ROWS, seed=1))
    version = stack.model_version

    def verdict_on_full_window():
        rows = stack.prometheus.values(f'vigil_drift_window_rows{{model_version="{version}"}}')
        verdict = stack.prometheus.values(f'vigil_drift_detected{{model_version="{version}"}}')
        return rows and verdict and min(rows.values()) >= WINDOW_ROWS

    stack.wait(verdict_on_full_window, "a verdict on a full window in Prometheus", 60)
    # Once the rules ran on that verdict, a drift alert would be in ALERTS (every `for:` 0 s).
    scraped = stack.prometheus.scraped_at(f'vigil_drift_detected{{model_version="{version}"}}')
    stack.wait(lambda: stack.prometheus.evaluated_after(scraped), "an evaluation of it", 30)
    assert set(stack.prometheus.values("vigil_drift_detected").values()) == {0.0}
    assert sum(stack.prometheus.values("vigil_feature_drifted").values()) == 0
    firing = stack.prometheus.values('ALERTS{alertstate="firing"}')
    assert not [k for k in firing if dict(k)["alertname"] in DRIFT_ALERTS], firing
    assert not [r for r in stack.webhook.received if r.labels["alertname"] in DRIFT_ALERTS]


def test_one_drifted_feature_raises_feature_drift_only(stack):
    assert ONE_FEATURE in stack.schema.numeric
    rows = make_rows(
        stack.reference,
        stack.schema,
        WINDOW_ROWS,
        drift=Drift.one,
        feature=ONE_FEATURE,
        shift=3.0,
        seed=2,
    )
    start = time.monotonic()
    stack.traffic(rows, "one-feature")
    took = stack.alert_after(
        "FeatureDriftDetected", start, feature=ONE_FEATURE, model_version=stack.model_version
    )
    assert took <= ALERT_TIMEOUT
    # A few more checks on the (now fully drifted) window: still one feature, no dataset drift.
    time.sleep(2 * CHECK_EVERY_SECONDS + 2)
    features = {r.labels.get("feature") for r in stack.webhook.alerts("FeatureDriftDetected")}
    assert features == {ONE_FEATURE}
    assert not stack.webhook.alerts("DataDriftDetected")
    assert set(stack.prometheus.values("vigil_drift_detected").values()) == {0.0}
    alert = stack.webhook.first("FeatureDriftDetected", feature=ONE_FEATURE)
    assert alert.labels["severity"] == "warning"
    assert ONE_FEATURE in alert.annotations["summary"]
    assert stack.model_version in alert.annotations["summary"]


def _report(link: str) -> httpx.Response | None:
    """The report at ``link``; None while the monitor says the first one is being written."""
    report = httpx.get(link, timeout=30)
    if report.status_code == 503:
        assert report.headers["retry-after"], report.headers
        return None
    assert report.status_code == 200, report.text
    return report


def test_most_features_drifted_raises_data_drift_with_report_link(stack):
    rows = make_rows(
        stack.reference, stack.schema, WINDOW_ROWS, drift=Drift.most, shift=2.0, seed=3
    )
    start = time.monotonic()
    stack.traffic(rows, "most-features")
    took = stack.alert_after("DataDriftDetected", start, model_version=stack.model_version)
    assert took <= ALERT_TIMEOUT
    alert = stack.webhook.first("DataDriftDetected", since=start)
    assert alert.labels["severity"] == "warning"
    assert stack.model_version in alert.annotations["summary"]
    assert alert.annotations["runbook"].endswith("#datadriftdetected")
    link = alert.annotations["report"]
    assert link == f"{stack.monitor_url}/reports/latest"
    # The report is rendered after the verdict that raised the alert (the first one imports
    # Evidently): a reader who follows the link before it is written is asked to retry.
    report = stack.wait(lambda: _report(link), "the report behind the alert's link", 180)
    assert report.headers["content-type"].startswith("text/html")
    assert "<html" in report.text[:5000].lower() and len(report.content) > 10_000

    # The per-feature alerts name the shifted features.
    shifted = set(drifted_features(stack.schema.numeric, Drift.most))

    def features_alerted():
        named = {r.labels.get("feature") for r in stack.webhook.alerts("FeatureDriftDetected")}
        return shifted <= named

    stack.wait(features_alerted, "FeatureDriftDetected for every shifted feature", 20)


def test_every_dashboard_query_returns_data(stack):
    # The default model's panels, no shadow or canary running.
    queries = dashboard_queries(task="classification", candidate=False)
    assert len(queries) > 10

    def empty() -> list[str]:
        return [q for q in queries if not stack.prometheus.query(q)]

    missing = empty()
    deadline = time.monotonic() + 45
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        missing = empty()
    assert not missing, f"dashboard queries without data: {missing}"


def test_locked_inference_log_raises_inference_log_failures(stack):
    db = stack.home / "inference.sqlite3"
    assert db.exists()
    one = make_rows(stack.reference, stack.schema, 1, seed=5)
    lock = sqlite3.connect(db, timeout=10, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        start = time.monotonic()
        codes = []
        for _ in range(4):
            resp = httpx.post(f"{stack.service_url}/predict", json={"instances": one}, timeout=30)
            codes.append(resp.status_code)
        lock.execute("ROLLBACK")
    finally:
        lock.close()
    assert codes == [503] * 4, codes
    took = stack.alert_after("InferenceLogFailures", start)
    assert took <= ALERT_TIMEOUT
    alert = stack.webhook.first("InferenceLogFailures", since=start)
    assert alert.labels["severity"] == "critical"
    # The store is writable again: requests succeed.
    ok = httpx.post(f"{stack.service_url}/predict", json={"instances": one}, timeout=30)
    assert ok.status_code == 200, ok.text


def test_stopped_monitor_raises_drift_monitor_down(stack):
    start = time.monotonic()
    stack.procs["monitor"].stop()
    took = stack.alert_after("DriftMonitorDown", start)
    assert took <= ALERT_TIMEOUT


def test_stopped_service_raises_prediction_service_down(stack):
    start = time.monotonic()
    stack.procs["service"].stop()
    took = stack.alert_after("PredictionServiceDown", start)
    assert took <= ALERT_TIMEOUT
    alert = stack.webhook.first("PredictionServiceDown", since=start)
    assert alert.labels["severity"] == "critical"
