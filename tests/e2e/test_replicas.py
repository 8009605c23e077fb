"""Three replicas and two monitors on one PostgreSQL, as a cluster runs them: each `bentoml
serve` process has its own empty VIGIL_HOME and reads the model, the pointer and the log from
the database; Prometheus scrapes all five through file_sd. Load is spread over the three; a
promotion through the CLI is served by every replica within 10 s without a failed request; the
replicas' log-row counters add up to the log; kill -9 of one replica under load loses no
acknowledged prediction. Exactly one monitor leads and only it exports verdicts; kill -9 of the
leader: the standby leads and publishes a verdict within 30 s."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import free_port
from tests.support.alerting import Prometheus, start_prometheus
from tests.support.alerting import wait_ready as prom_ready
from tests.support.cli import run_command
from tests.support.processes import Proc, base_env, http_ok, stop_all, wait_until
from tests.support.prom import label_values, scrape, total
from tests.support.service import ServiceFailed, launch, wait_ready
from vigil.log.inference_log import InferenceLog
from vigil.registry.schema import drop_registry_schema
from vigil.registry.store import Registry
from vigil.settings import get_settings

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

REPLICAS = 3
CLIENTS = 6
ROWS = 2
SERVED_WITHIN = 10.0
MONITORS = 2
TAKEOVER_WITHIN = 30.0
# A check after every 50 new rows (at most every 3 s), a verdict from 20: the test logs its own
# 100 rows for one. The interval is long so that idle monitors render few reports.
MONITOR_SETTINGS = {
    "drift_window_rows": 50,
    "drift_min_rows": 20,
    "drift_min_interval_seconds": 3,
    "drift_interval_seconds": 20,
}


@dataclass
class Monitor:
    proc: Proc
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def state(self) -> tuple[float, set[str], float]:
        """(vigil_monitor_leader, the versions it has a verdict for, its last check's start)."""
        text = scrape(self.url)
        return (
            total(text, "vigil_monitor_leader"),
            label_values(text, "vigil_drift_detected", "model_version"),
            total(text, "vigil_drift_last_run_timestamp_seconds"),
        )


def start_monitor(name: str, db: dict, home, log) -> Monitor:
    port = free_port()
    env = base_env(
        home=home,
        database_url=db["VIGIL_DATABASE_URL"],
        table_prefix=db["VIGIL_TABLE_PREFIX"],
        monitor_host="127.0.0.1",
        monitor_port=port,
        **MONITOR_SETTINGS,
    )
    argv = [sys.executable, "-m", "monitoring.drift", "run"]
    return Monitor(Proc(name, argv, log, env), port)


@pytest.fixture
def cluster(postgres_url, trained_home_template, tmp_path):
    url, prefix = postgres_url
    db = {"VIGIL_DATABASE_URL": url, "VIGIL_TABLE_PREFIX": prefix}
    source = Registry(get_settings(home=trained_home_template)).load_production()
    trainer = Registry(
        get_settings(home=tmp_path / "trainer", database_url=url, table_prefix=prefix)
    )
    first = trainer.save(source.pipeline, source.contract, source.reference)
    second = trainer.save(source.pipeline, source.contract, source.reference)
    trainer.promote(first)
    replicas, monitors = [], []
    try:
        for i in range(REPLICAS):
            home = tmp_path / f"replica-{i}"  # empty: no model, no pointer, no log
            home.mkdir()
            replicas.append(launch(home, free_port(), {**db, "VIGIL_WORKERS": "1"}))
        for i in range(MONITORS):  # started alongside the replicas, each with an empty home
            name = f"monitor-{i}"
            monitors.append(start_monitor(name, db, tmp_path / name, tmp_path / f"{name}.log"))
        for replica in replicas:
            try:
                wait_ready(replica, timeout=120)
            except ServiceFailed as exc:
                pytest.fail(str(exc)[-4000:])
        procs = [m.proc for m in monitors]
        for m in monitors:
            wait_until(lambda m=m: http_ok(f"{m.url}/healthz"), 120, "the monitors", procs)
        yield db, replicas, monitors, first, second, source
    finally:
        for replica in replicas:
            replica.kill()
        stop_all(m.proc for m in monitors)
        drop_registry_schema(trainer.engine, prefix)


@pytest.fixture
def prometheus(cluster, tmp_path):
    _, replicas, monitors, *_ = cluster
    config = "global: {scrape_interval: 1s}\nscrape_configs:\n"
    for job, ports in (
        ("vigil-service", [r.port for r in replicas]),
        ("vigil-monitor", [m.port for m in monitors]),
    ):
        targets = tmp_path / f"{job}.json"
        targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}" for port in ports]}]))
        config += (
            f"  - job_name: {job}\n"
            f"    file_sd_configs: [{{files: ['{targets}'], refresh_interval: 1s}}]\n"
        )
    (tmp_path / "prometheus.yml").write_text(config)
    port = free_port()
    proc = start_prometheus(
        tmp_path / "prometheus.yml", tmp_path / "prom-data", port, tmp_path / "prometheus.log"
    )
    base = f"http://127.0.0.1:{port}"
    try:
        prom_ready(proc, base)
        yield Prometheus(base)
    finally:
        proc.stop()


def serving(url: str) -> set[str]:
    text = scrape(url)
    return {
        v
        for v in label_values(text, "vigil_model_info", "model_version")
        if total(text, "vigil_model_info", model_version=v) == 1
    }


async def load(urls: list[str], rows: list[dict], during) -> list:
    """CLIENTS clients, spread over ``urls``, posting until ``during`` (blocking, in a thread
    after a second of load) returns and another second passes: (url, status, body) each."""
    results: list = []
    done = asyncio.Event()

    async def client(i: int) -> None:
        url = urls[i % len(urls)]
        async with httpx.AsyncClient(timeout=30) as http:
            n = 0
            while not done.is_set():
                start = (i * 31 + n) % (len(rows) - ROWS)
                n += 1
                try:
                    r = await http.post(
                        f"{url}/predict", json={"instances": rows[start : start + ROWS]}
                    )
                    results.append(
                        (url, r.status_code, r.json() if r.status_code == 200 else r.text)
                    )
                except httpx.HTTPError as exc:
                    results.append((url, None, repr(exc)))
                    await asyncio.sleep(0.05)

    async def trigger() -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(during)
        await asyncio.sleep(1.0)
        done.set()

    await asyncio.gather(trigger(), *(client(i) for i in range(CLIENTS)))
    return results


def test_replicas_share_one_registry_and_log(cluster, prometheus, tmp_path):
    db, replicas, monitors, first, second, source = cluster
    urls = [r.url for r in replicas]
    rows = source.reference[source.schema.names].head(200).to_dict(orient="records")
    for url in urls:
        assert serving(url) == {first}  # from the database, with an empty home

    # Promotion through the CLI, from another "machine" (its own empty home), under load.
    took: dict[str, float] = {}

    def promote_and_wait() -> None:
        done = run_command("training.promote", second, home=tmp_path / "operator",
                           database_url=db["VIGIL_DATABASE_URL"],
                           table_prefix=db["VIGIL_TABLE_PREFIX"])  # fmt: skip
        assert done.returncode == 0, done.stderr
        at = time.monotonic()
        while len(took) < len(urls) and time.monotonic() - at < 2 * SERVED_WITHIN:
            for url in urls:
                if url not in took and serving(url) == {second}:
                    took[url] = time.monotonic() - at
            time.sleep(0.05)

    results = asyncio.run(load(urls, rows, promote_and_wait))
    print(f"promotion served by every replica after {max(took.values(), default=-1):.2f} s")
    assert len(took) == len(urls) and max(took.values()) <= SERVED_WITHIN, took
    failed = [r for r in results if r[1] != 200]
    assert not failed, f"{len(failed)} of {len(results)} failed: {failed[:3]}"
    assert {url for url, _, _ in results} == set(urls)  # the load reached every replica
    assert {body["model_version"] for _, _, body in results} == {first, second}

    log = InferenceLog(db["VIGIL_DATABASE_URL"], db["VIGIL_TABLE_PREFIX"])
    try:
        acked = {pid for _, _, body in results for pid in body["prediction_ids"]}
        assert acked <= log.prediction_ids()
        logged = log.count()
        assert logged == len(acked)
        # Prometheus's sum over the replicas' counters equals the rows in the log.
        deadline = time.monotonic() + 20
        while True:
            up = prometheus.values('up{job="vigil-service"}')
            summed = prometheus.values('sum(vigil_inference_log_rows_total{job="vigil-service"})')
            if (
                len(up) == REPLICAS
                and set(up.values()) == {1.0}
                and list(summed.values()) == [float(logged)]
            ):
                break
            assert time.monotonic() < deadline, (up, summed, logged)
            time.sleep(0.5)

        # kill -9 one replica under load: nothing acknowledged is missing from the log.
        victim = replicas[-1]
        results = asyncio.run(load(urls, rows, lambda: victim.kill()))
        acked = {
            pid for _, status, body in results if status == 200 for pid in body["prediction_ids"]
        }
        assert acked and acked <= log.prediction_ids()
        survivors = [r for r in results if r[0] != victim.url]
        assert survivors and all(status == 200 for _, status, _ in survivors)
    finally:
        log.close()

    # Rows of the production model for a verdict, then the monitors' failover.
    answer = httpx.post(f"{urls[0]}/predict", json={"instances": rows[:100]}, timeout=30)
    assert answer.status_code == 200, answer.text
    monitors_fail_over(monitors, prometheus, second)


def leader_with_verdict(monitors: list[Monitor], version: str) -> Monitor | None:
    """The one leader once it has a verdict for ``version``; asserts at every scrape that at
    most one monitor leads and that no standby exports a verdict."""
    states = {m.port: m.state() for m in monitors}
    leaders = [m for m in monitors if states[m.port][0] == 1]
    assert len(leaders) <= 1, states
    assert all(verdicts == set() for lead, verdicts, _ in states.values() if lead == 0), states
    if leaders and version in states[leaders[0].port][1]:
        return leaders[0]
    return None


def monitors_fail_over(monitors: list[Monitor], prometheus: Prometheus, version: str) -> None:
    procs = [m.proc for m in monitors]
    leader = wait_until(
        lambda: leader_with_verdict(monitors, version), 60, "one leader's verdict", procs
    )
    (standby,) = [m for m in monitors if m is not leader]
    leader_target = f"127.0.0.1:{leader.port}"

    def prometheus_sees(target: str, targets: int) -> bool:
        """Prometheus sums one leader over the scraped monitors, and one verdict: target's."""
        up = prometheus.values('up{job="vigil-monitor"}')
        leaders = prometheus.values('sum(vigil_monitor_leader{job="vigil-monitor"})')
        verdicts = prometheus.values('vigil_drift_detected{job="vigil-monitor"}')
        return (
            sorted(up.values()) == [0.0] * (MONITORS - targets) + [1.0] * targets
            and list(leaders.values()) == [1.0]
            and [dict(labels)["instance"] for labels in verdicts] == [target]
        )

    wait_until(lambda: prometheus_sees(leader_target, MONITORS), 20, "prometheus", procs)

    leader.proc.signal_group(signal.SIGKILL)
    leader.proc.popen.wait(10)
    killed_at, started = time.time(), time.monotonic()

    def standby_verdict() -> bool:
        lead, verdicts, last_run = standby.state()
        assert lead == 1 or not verdicts, (lead, verdicts)
        return lead == 1 and version in verdicts and last_run >= killed_at

    wait_until(standby_verdict, 2 * TAKEOVER_WITHIN, "the standby's verdict", [standby.proc])
    took = time.monotonic() - started
    print(f"monitor takeover: the standby's verdict {took:.2f} s after kill -9 of the leader")
    assert took <= TAKEOVER_WITHIN
    assert standby.state()[0] == 1
    standby_target = f"127.0.0.1:{standby.port}"
    wait_until(lambda: prometheus_sees(standby_target, 1), 20, "prometheus", [standby.proc])
