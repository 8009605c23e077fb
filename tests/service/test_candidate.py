"""The canary split and the shadow worker, without a server: the split's share over 10,000
request ids and its sameness in every process; a shadow queue that is full skips and counts,
and a model that raises is counted and logged while the worker goes on."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest

from service.canary import canary_bucket, in_canary
from service.predictor import Job
from service.shadow import ShadowWorker
from vigil.log.prediction_ids import new_request_ids
from vigil.tasks import CLASSIFIER, Outputs


@pytest.mark.parametrize("percent", [1, 5, 30, 50, 90])
def test_the_canary_share_over_10000_requests_is_within_2_points(percent):
    ids = new_request_ids(10_000)
    share = sum(in_canary(rid, percent) for rid in ids) / len(ids) * 100
    assert abs(share - percent) <= 2, share


@pytest.mark.integration
def test_the_same_request_id_gets_the_same_model_in_every_process():
    ids = new_request_ids(200)
    here = [canary_bucket(rid) for rid in ids]
    code = (
        "import sys; from service.canary import canary_bucket; "
        "print([canary_bucket(r) for r in sys.argv[1:]])"
    )
    for _ in range(2):  # two processes: a salted hash() would differ between them
        done = subprocess.run(
            [sys.executable, "-c", code, *ids], capture_output=True, text=True, check=True
        )
        assert eval(done.stdout) == here  # noqa: S307 - our own list of ints


@dataclass
class FakeInference:
    task = CLASSIFIER
    classes = [0, 1]
    fail: bool = False
    delay: float = 0.0

    def predict(self, columns, rows, numbers=None):
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("boom")
        import numpy as np

        proba = np.tile([[0.25, 0.75]], (rows, 1))
        return Outputs([1] * rows, proba, np.ones(rows, dtype=int))


@dataclass
class FakeBundle:
    tag: str


@dataclass
class FakeModel:
    bundle: FakeBundle
    inference: FakeInference


class MemoryLog:
    def __init__(self):
        self.records = []

    def write(self, records):
        self.records.extend(records)


class Counts:
    def __init__(self):
        self.skipped = self.rows = 0
        self.failures = []
        outer = self

        class C:
            def __init__(self, attr):
                self.attr = attr

            def inc(self, n=1):
                setattr(outer, self.attr, getattr(outer, self.attr) + n)

        self.shadow_skipped, self.shadow_rows = C("skipped"), C("rows")

    def candidate_failure(self, version, stage, rows):
        self.failures.append((version, stage, rows))


def job(rows: int = 2) -> Job:
    rid = new_request_ids(1)[0]
    return Job(rid, [{"x": float(i)} for i in range(rows)], columns={"x": [0.0] * rows})


def wait_idle(worker: ShadowWorker, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not worker.idle():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_full_queue_skips_rows_and_counts_them_without_blocking():
    log, counts = MemoryLog(), Counts()
    worker = ShadowWorker(log, counts, max_queued_rows=10, batch_rows=4)
    model = FakeModel(FakeBundle("vigil-model:slow"), FakeInference(delay=0.2))
    try:
        began = time.monotonic()
        offered = [worker.offer(model, job()) for _ in range(50)]
        assert time.monotonic() - began < 0.1  # never waits for the model
        assert not all(offered) and any(offered)
        skipped = 2 * offered.count(False)
        assert counts.skipped == worker.skipped == skipped
        wait_idle(worker)
        assert counts.rows == worker.scored == 100 - skipped
        # Each scored request is one whole record under its own request id.
        assert all(len(r.predictions) == 2 for r in log.records)
    finally:
        worker.close()


def test_a_model_that_raises_is_counted_and_logged_once_and_the_worker_goes_on(caplog):
    log, counts = MemoryLog(), Counts()
    worker = ShadowWorker(log, counts, max_queued_rows=1000, batch_rows=1000)
    bad = FakeModel(FakeBundle("vigil-model:bad"), FakeInference(fail=True))
    good = FakeModel(FakeBundle("vigil-model:good"), FakeInference())
    try:
        for _ in range(5):
            worker.offer(bad, job())
            wait_idle(worker)
        assert sum(r for _, stage, r in counts.failures if stage == "predict") == 10
        assert log.records == []
        lines = [r for r in caplog.records if "failed to predict" in r.getMessage()]
        assert len(lines) == 1  # once per failing model, not once per batch
        worker.offer(good, job())
        wait_idle(worker)
        assert [r.model_version for r in log.records] == ["vigil-model:good"]
    finally:
        worker.close()


def test_offers_from_many_threads_never_exceed_the_bound():
    log, counts = MemoryLog(), Counts()
    worker = ShadowWorker(log, counts, max_queued_rows=20, batch_rows=5)
    model = FakeModel(FakeBundle("vigil-model:m"), FakeInference(delay=0.01))
    try:
        threads = [
            threading.Thread(target=lambda: [worker.offer(model, job(1)) for _ in range(200)])
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert worker._queued_rows <= 20
        wait_idle(worker)
        assert worker.scored + worker.skipped == 800
    finally:
        worker.close()


def test_a_candidate_that_fails_to_load_is_counted_logged_and_retried(caplog, tmp_path):
    """The follower keeps the worker serving without a candidate and tries again later."""
    import asyncio
    from types import SimpleNamespace

    from service.follow import PointerFollower
    from vigil.registry.candidates import Candidate, Pointers

    production = "vigil-model:1"  # stays put: only the candidate moves

    class WorkerState:
        candidate = None
        loads = 0
        model = SimpleNamespace(bundle=SimpleNamespace(tag=production))

        def __init__(self):
            self.metrics = Counts()

        def load(self, tag):
            self.loads += 1
            raise OSError("artifact damaged")

        async def set_candidate(self, candidate):  # pragma: no cover - never reached
            raise AssertionError("no candidate should be set")

    class Pointer:
        registry = SimpleNamespace(production_tag=lambda: production)

        def pointers(self):
            return Pointers(1, Candidate("vigil-model:broken", "shadow", 0.0, 1, 0.0))

    now = [0.0]
    runtime = WorkerState()
    follower = PointerFollower(
        None, lambda: runtime, retry=10.0, clock=lambda: now[0], candidates=Pointer()
    )
    assert asyncio.run(follower.check()) is False
    assert runtime.metrics.failures == [("vigil-model:broken", "load", 0)]
    assert "cannot load candidate vigil-model:broken" in caplog.text
    now[0] = 5.0
    asyncio.run(follower.check())
    assert runtime.loads == 1  # not before the retry delay
    now[0] = 10.5
    asyncio.run(follower.check())
    assert runtime.loads == 2
