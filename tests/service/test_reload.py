"""Following the production pointer inside one worker, without a server: change detection,
the swap (in-flight requests finish on the old model), metrics, and a model that fails to
load."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry, generate_latest

from service.follow import PointerFollower, PointerWatch
from service.metrics import LoadFailureMetrics
from service.predictor import Job
from service.worker import WorkerState
from tests.support.prom import total
from tests.support.registry import corrupt_artifact
from vigil.log.prediction_ids import new_request_id
from vigil.registry.store import Registry
from vigil.settings import get_settings


def test_pointer_watch_sees_every_promotion_and_rollback_even_back_to_the_same_tag(trained_home):
    registry = Registry(get_settings(home=trained_home))
    first = registry.production_tag()
    bundle = registry.load(first)
    second = registry.save(bundle.pipeline, bundle.contract, bundle.reference)
    watch = PointerWatch(registry)
    assert watch.changed()  # the first look
    assert not watch.changed()
    registry.promote(second)
    registry.rollback()  # the tag is the same again; the revision is not
    assert watch.changed()
    assert not watch.changed()


def test_a_model_whose_bytes_do_not_match_is_refused_and_logged(trained_home, caplog):
    settings = get_settings(home=trained_home)
    registry = Registry(settings)
    first = registry.load_production()
    broken = registry.save(first.pipeline, first.contract, first.reference)
    corrupt_artifact(settings, broken)
    runtime = WorkerState.start(settings, CollectorRegistry())
    reloader = PointerFollower(settings, lambda: runtime, clock=Clock())
    registry.promote(broken)

    async def scenario() -> None:
        with caplog.at_level(logging.ERROR, logger="service.follow"):
            assert not await reloader.check()
        assert runtime.bundle.tag == first.tag
        await runtime.close()

    asyncio.run(scenario())
    assert f"cannot load production model {broken} (ArtifactIntegrityError" in caplog.text
    assert "does not match the sha256 recorded at save" in caplog.text


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reloader_swaps_in_a_promoted_model_and_keeps_serving_through_a_bad_one(
    trained_home, default_rows, caplog
):
    settings = get_settings(home=trained_home)
    registry = Registry(settings)
    first = registry.load_production()
    second = registry.save(first.pipeline, first.contract, first.reference)
    broken = registry.save(first.pipeline, first.contract, first.reference)
    prom = CollectorRegistry()
    runtime = WorkerState.start(settings, prom)
    clock = Clock()
    failures = LoadFailureMetrics(prom)
    reloader = PointerFollower(
        settings, lambda: runtime, retry=10.0, clock=clock, on_load_failure=failures.record
    )

    async def scenario() -> None:
        assert not await reloader.check()  # nothing promoted since the start
        # Requests taken by the first model, then a promotion: they finish on the first.
        old = runtime.model
        jobs = [
            asyncio.ensure_future(
                old.batcher.submit(Job(new_request_id(), default_rows[i : i + 2]))
            )
            for i in range(5)
        ]
        await asyncio.sleep(0)  # submitted, not yet answered
        registry.promote(second)
        assert await reloader.check()
        assert all(job.done() for job in jobs)  # the swap waited for them
        await asyncio.gather(*jobs)
        assert runtime.bundle.tag == second

        # A model that cannot load: the current one keeps serving, the error is logged.
        corrupt_artifact(settings, broken)
        registry.promote(broken)
        with caplog.at_level(logging.ERROR, logger="service.follow"):
            assert not await reloader.check()
        assert runtime.bundle.tag == second
        assert f"cannot load production model {broken}" in caplog.text
        clock.now += 5
        assert not await reloader.check()  # not retried before `retry` seconds
        # Rolled back meanwhile: followed at the next look, whatever the retry timer says.
        registry.rollback()
        registry.rollback()
        assert await reloader.check()
        assert runtime.bundle.tag == first.tag
        answer = await runtime.model.batcher.submit(Job(new_request_id(), default_rows[:1]))
        assert len(answer.prediction_ids) == 1
        await runtime.close()

    asyncio.run(scenario())
    assert runtime.log is not None
    from vigil.log.inference_log import InferenceLog

    log = InferenceLog.from_settings(settings)
    try:
        assert log.count(first.tag) == 10 + 1  # 5 requests of 2 rows, then one row
        assert log.count(second) == 0
    finally:
        log.close()
    text = generate_latest(prom).decode()
    assert total(text, "vigil_model_info", model_version=first.tag) == 1
    assert total(text, "vigil_model_info", model_version=second) == 0
    assert total(text, "vigil_model_served_info", model_version=first.tag) == 1
    assert total(text, "vigil_model_served_info", model_version=second) == 0
    assert total(text, "vigil_model_served_info", model_version=broken) == 0
    assert (
        total(text, "vigil_model_load_failures_total", model_version=broken, reason="integrity")
        == 1
    )
    assert total(text, "vigil_predictions_total", model_version=first.tag) == 11


def test_a_worker_keeps_only_referenced_artifacts_in_its_cache(trained_home):
    settings = get_settings(home=trained_home)
    registry = Registry(settings)
    first = registry.load_production()
    other = registry.save(first.pipeline, first.contract, first.reference, artifacts={
        "notes.bin": b"bytes only the unpromoted model has",
    })  # fmt: skip
    runtime = WorkerState.start(settings, CollectorRegistry())
    reloader = PointerFollower(settings, lambda: runtime, clock=Clock())
    only_other = registry.model(other).artifacts["notes.bin"]["sha256"]
    cached = registry.store.cache_dir / only_other[:2] / only_other
    assert cached.exists()  # cached at save
    assert reloader.prune_cache() >= 1
    assert not cached.exists()
    for digest in first.artifacts.values():  # production's stay
        assert (registry.store.cache_dir / digest[:2] / digest).exists()
    asyncio.run(runtime.close())
