"""Three replicas on one PostgreSQL, as a cluster runs them: each `bentoml serve` process has
its own empty VIGIL_HOME and reads the model, the pointer and the log from the database;
Prometheus scrapes them through file_sd. Load is spread over the three; a promotion through
the CLI is served by every replica within 10 s without a failed request; the replicas'
log-row counters add up to the log; kill -9 of one replica under load loses no acknowledged
prediction."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import free_port
from tests.support.alerting import Prometheus, start_prometheus
from tests.support.alerting import wait_ready as prom_ready
from tests.support.prom import label_values, scrape, total
from tests.support.service import ROOT, ServiceFailed, launch, wait_ready
from vigil.inference_log import InferenceLog
from vigil.registry import Registry
from vigil.registry_schema import drop_registry_schema
from vigil.settings import get_settings

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

REPLICAS = 3
CLIENTS = 6
ROWS = 2
SERVED_WITHIN = 10.0


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
    replicas = []
    try:
        for i in range(REPLICAS):
            home = tmp_path / f"replica-{i}"  # empty: no model, no pointer, no log
            home.mkdir()
            replicas.append(launch(home, free_port(), {**db, "VIGIL_WORKERS": "1"}))
        for replica in replicas:
            try:
                wait_ready(replica, timeout=120)
            except ServiceFailed as exc:
                pytest.fail(str(exc)[-4000:])
        yield db, replicas, first, second, source
    finally:
        for replica in replicas:
            replica.kill()
        drop_registry_schema(trainer.engine, prefix)


@pytest.fixture
def prometheus(cluster, tmp_path):
    _, replicas, *_ = cluster
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{r.port}" for r in replicas]}]))
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: vigil-service\n"
        f"    file_sd_configs: [{{files: ['{targets}'], refresh_interval: 1s}}]\n"
    )
    port = free_port()
    proc = start_prometheus(config, tmp_path / "prom-data", port, tmp_path / "prometheus.log")
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
    db, replicas, first, second, source = cluster
    urls = [r.url for r in replicas]
    rows = source.reference[source.schema.names].head(200).to_dict(orient="records")
    for url in urls:
        assert serving(url) == {first}  # from the database, with an empty home

    # Promotion through the CLI, from another "machine" (its own empty home), under load.
    took: dict[str, float] = {}

    def promote_and_wait() -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env.update(db, VIGIL_HOME=str(tmp_path / "operator"), VIGIL_ENV_FILE="")
        done = subprocess.run(
            [sys.executable, "-m", "training.promote", second],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
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
