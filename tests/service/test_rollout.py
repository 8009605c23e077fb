"""Rollout without downtime: a model promoted (or rolled back) with the real CLI while the
2-worker service is under load is picked up live; no request fails, in-flight requests finish
on the old model, and every answer, log row and metric carries the version that answered."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest

from tests.conftest import free_port
from tests.support.cli import run_command
from tests.support.prom import label_values, scrape, total
from tests.support.registry import corrupt_artifact
from tests.support.service import start_service
from vigil.log.inference_log import InferenceLog
from vigil.registry.store import Registry
from vigil.settings import get_settings

pytestmark = pytest.mark.integration

CLIENTS = 6
ROWS = 2
MAX_REQUESTS = 20000  # a bound, whatever the machine's speed


def promote(home, *args: str) -> None:
    """``python -m training.promote ARGS``, run in this process as the replicas' test does: a
    new interpreter's imports would only lengthen the load around it."""
    done = run_command("training.promote", *args, home=home)
    assert done.returncode == 0, done.stderr


async def load(url: str, rows: list[dict], during) -> tuple[list, float]:
    """CLIENTS clients posting /predict until ``during`` (blocking, run in a thread after a
    second of load) has returned and another second has passed. Returns (start time, status,
    body or error) per request, and the time ``during`` returned."""
    results: list = []
    done = asyncio.Event()

    async def client(i: int) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            n = 0
            while not done.is_set() and len(results) < MAX_REQUESTS:
                start = (i * 31 + n) % (len(rows) - ROWS)
                n += 1
                began = time.monotonic()
                try:
                    r = await http.post(
                        f"{url}/predict", json={"instances": rows[start : start + ROWS]}
                    )
                    body = r.json() if r.status_code == 200 else r.text
                    results.append((began, r.status_code, body))
                except httpx.HTTPError as exc:
                    results.append((began, None, repr(exc)))

    returned = 0.0

    async def trigger() -> None:
        nonlocal returned
        await asyncio.sleep(1.0)
        await asyncio.to_thread(during)
        returned = time.monotonic()
        await asyncio.sleep(1.0)
        done.set()

    await asyncio.gather(trigger(), *(client(i) for i in range(CLIENTS)))
    return results, returned


def wait_until_served(url: str, tag: str, timeout: float = 10.0) -> None:
    """Until every worker serves ``tag``: ``vigil_model_info`` is the max over live workers, so
    it is 1 for ``tag`` alone only once no worker still serves another version. (Polling
    ``/model`` cannot tell: BentoML may route every request of one client to one worker.)"""
    deadline = time.monotonic() + timeout
    while True:
        text = scrape(url)
        serving = {
            version
            for version in label_values(text, "vigil_model_info", "model_version")
            if total(text, "vigil_model_info", model_version=version) == 1
        }
        if serving == {tag}:
            return
        assert time.monotonic() < deadline, f"{tag} not served after {timeout} s: {serving}"
        time.sleep(0.05)


def model_info(url: str, tag: str) -> float:
    return total(scrape(url), "vigil_model_info", model_version=tag)


def test_promotion_and_rollback_are_followed_live_under_load(trained_home, default_rows):
    settings = get_settings(home=trained_home)
    registry = Registry(settings)
    first = registry.production_tag()
    bundle = registry.load(first)
    second = registry.save(bundle.pipeline, bundle.contract, bundle.reference)  # not promoted

    with start_service(trained_home, free_port(), {"VIGIL_WORKERS": "2"}) as svc:

        def promote_and_wait() -> None:
            promote(trained_home, second)
            # The slowest worker may still be loading: the pointer is read once a second.
            wait_until_served(svc.url, second, timeout=15.0)

        timed, switched = asyncio.run(load(svc.url, default_rows, promote_and_wait))
        results = [(status, body) for _, status, body in timed]

        failed = [r for r in results if r[0] != 200]
        assert not failed, f"{len(failed)} of {len(results)} failed: {failed[:3]}"
        answered = Counter(body["model_version"] for _, body in results)
        assert set(answered) == {first, second}, answered
        # Once every worker serves the new model, every request sent gets it.
        after = [body["model_version"] for began, _, body in timed if began > switched]
        assert after and set(after) == {second}, Counter(after)
        assert model_info(svc.url, second) == 1
        assert model_info(svc.url, first) == 0

        # Every 200 is logged, under the version that answered it, and nothing else is.
        log = InferenceLog.from_settings(settings)
        try:
            for tag in (first, second):
                assert log.count(tag) == answered[tag] * ROWS, tag
            acked = {pid for _, body in results for pid in body["prediction_ids"]}
            assert log.prediction_ids() == acked
        finally:
            log.close()
        metrics = scrape(svc.url)
        for tag in (first, second):
            assert total(metrics, "vigil_predictions_total", model_version=tag) == (
                answered[tag] * ROWS
            )

        # Rollback with the real CLI: the first model is back within a few seconds.
        promote(trained_home, "--rollback")
        wait_until_served(svc.url, first, timeout=10.0)
        response = httpx.post(f"{svc.url}/predict", json={"instances": default_rows[:1]})
        assert response.status_code == 200
        assert response.json()["model_version"] == first
        assert model_info(svc.url, first) == 1
        assert model_info(svc.url, second) == 0

        # A production model that cannot load: logged, and the running model keeps serving.
        broken = registry.save(bundle.pipeline, bundle.contract, bundle.reference)
        corrupt_artifact(settings, broken)
        promote(trained_home, broken, "--force")  # refused without: it cannot load
        deadline = time.monotonic() + 10
        while svc.log_text().count(f"cannot load production model {broken}") < 2:
            assert time.monotonic() < deadline, svc.log_text()[-3000:]
            time.sleep(0.1)
        wait_until_served(svc.url, first, timeout=1.0)
        response = httpx.post(f"{svc.url}/predict", json={"instances": default_rows[:1]})
        assert response.status_code == 200
        assert response.json()["model_version"] == first
