"""The in-worker micro-batcher: batching, ordering, isolation, draining."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from service.batcher import BatcherClosed, BatcherFull, MicroBatcher


class Recorder:
    """A batch function that records its calls; items are (name, rows) pairs."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None):
        self.calls: list[list[tuple[str, int]]] = []
        self.threads: set[int] = set()
        self.delay = delay
        self.fail_on = fail_on

    def __call__(self, items):
        self.threads.add(threading.get_ident())
        self.calls.append(list(items))
        time.sleep(self.delay)
        if self.fail_on and any(name == self.fail_on for name, _ in items):
            raise RuntimeError("boom")
        return [ValueError(name) if name.startswith("bad") else f"done:{name}" for name, _ in items]


def make(recorder, **kwargs) -> MicroBatcher:
    kwargs.setdefault("max_rows", 100)
    kwargs.setdefault("wait_ms", 20)
    return MicroBatcher(recorder, rows=lambda item: item[1], **kwargs)


def test_concurrent_requests_share_one_call_and_get_their_own_answer():
    recorder = Recorder()

    async def main():
        batcher = make(recorder, wait_ms=50)
        results = await asyncio.gather(*(batcher.submit((f"r{i}", 1)) for i in range(10)))
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert results == [f"done:r{i}" for i in range(10)]
    assert len(recorder.calls) == 1
    assert recorder.threads and threading.get_ident() not in recorder.threads  # off the loop


def test_a_request_is_never_split_and_batches_respect_max_rows():
    recorder = Recorder()

    async def main():
        batcher = make(recorder, max_rows=5, wait_ms=30)
        sizes = [3, 3, 2, 7, 1]
        results = await asyncio.gather(*(batcher.submit((f"r{i}", n)) for i, n in enumerate(sizes)))
        await batcher.close()
        return results

    assert asyncio.run(main()) == [f"done:r{i}" for i in range(5)]
    for call in recorder.calls:
        rows = sum(n for _, n in call)
        assert rows <= 5 or len(call) == 1  # only a lone oversized request exceeds it
    names = [name for call in recorder.calls for name, _ in call]
    assert sorted(names) == [f"r{i}" for i in range(5)]  # each exactly once, whole
    assert ["r3"] in [[name for name, _ in call] for call in recorder.calls]


def test_a_full_batch_does_not_wait():
    recorder = Recorder()

    async def main():
        batcher = make(recorder, max_rows=4, wait_ms=5_000)
        start = time.monotonic()
        await asyncio.gather(*(batcher.submit((f"r{i}", 1)) for i in range(4)))
        took = time.monotonic() - start
        await batcher.close()
        return took

    assert asyncio.run(main()) < 2.0


def test_a_lone_request_waits_at_most_wait_ms():
    recorder = Recorder()

    async def main():
        batcher = make(recorder, wait_ms=100)
        start = time.monotonic()
        await batcher.submit(("only", 1))
        took = time.monotonic() - start
        await batcher.close()
        return took

    assert asyncio.run(main()) < 1.0


def test_an_error_result_reaches_only_its_caller():
    recorder = Recorder()

    async def main():
        batcher = make(recorder, wait_ms=50)
        results = await asyncio.gather(
            batcher.submit(("ok1", 1)),
            batcher.submit(("bad", 1)),
            batcher.submit(("ok2", 1)),
            return_exceptions=True,
        )
        await batcher.close()
        return results

    ok1, bad, ok2 = asyncio.run(main())
    assert (ok1, ok2) == ("done:ok1", "done:ok2")
    assert isinstance(bad, ValueError)


def test_a_failing_batch_fails_its_callers_and_the_next_batch_still_runs():
    recorder = Recorder(fail_on="poison")

    async def main():
        batcher = make(recorder, wait_ms=50)
        first = await asyncio.gather(
            batcher.submit(("poison", 1)), batcher.submit(("x", 1)), return_exceptions=True
        )
        second = await batcher.submit(("after", 1))
        await batcher.close()
        return first, second

    first, second = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in first)
    assert second == "done:after"


def test_close_drains_queued_work_and_refuses_new_work():
    recorder = Recorder(delay=0.05)

    async def main():
        batcher = make(recorder, max_rows=2, wait_ms=0)
        tasks = [asyncio.create_task(batcher.submit((f"r{i}", 1))) for i in range(7)]
        await asyncio.sleep(0)  # let them queue
        await batcher.close()
        assert sum(len(c) for c in recorder.calls) == 7  # all processed before close returns
        with pytest.raises(BatcherClosed):
            await batcher.submit(("late", 1))
        # Every queued request was answered by close(); the callers only need to wake up.
        return await asyncio.wait_for(asyncio.gather(*tasks), timeout=1.0)

    assert asyncio.run(main()) == [f"done:r{i}" for i in range(7)]
    assert sum(len(c) for c in recorder.calls) == 7


def test_a_caller_that_goes_away_does_not_cancel_the_batch():
    recorder = Recorder(delay=0.2)

    async def main():
        batcher = make(recorder, wait_ms=0)
        gone = asyncio.create_task(batcher.submit(("gone", 1)))
        await asyncio.sleep(0.05)  # its batch is running
        gone.cancel()
        stays = await batcher.submit(("stays", 1))
        await batcher.close()
        return stays

    assert asyncio.run(main()) == "done:stays"
    assert [name for call in recorder.calls for name, _ in call] == ["gone", "stays"]


def test_callers_that_come_back_join_the_next_batch():
    """Closed-loop load: 8 callers, each sending again as soon as it is answered. The batcher
    waits for the ones just answered instead of alternating two half-size batches."""
    recorder = Recorder(delay=0.005)

    async def caller(batcher, name, rounds):
        for i in range(rounds):
            await batcher.submit((f"{name}-{i}", 1))

    async def main():
        batcher = make(recorder, wait_ms=20)
        await asyncio.gather(*(caller(batcher, f"c{j}", 10) for j in range(8)))
        await batcher.close()

    asyncio.run(main())
    sizes = [len(c) for c in recorder.calls]
    assert sum(sizes) == 80
    assert sum(sizes) / len(sizes) >= 6, sizes


def test_past_max_queued_rows_submit_sheds_at_once():
    recorder = Recorder(delay=0.2)

    async def main():
        batcher = make(recorder, wait_ms=0, max_queued_rows=3)
        running = asyncio.create_task(batcher.submit(("running", 1)))
        await asyncio.sleep(0.05)  # its batch runs: the queue is empty again
        queued = [asyncio.create_task(batcher.submit((f"q{i}", 1))) for i in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(BatcherFull):
            await batcher.submit(("one-too-many", 1))
        results = await asyncio.gather(running, *queued)
        await batcher.close()
        return results

    assert asyncio.run(main()) == ["done:running", "done:q0", "done:q1", "done:q2"]
    assert "one-too-many" not in [name for call in recorder.calls for name, _ in call]


def test_a_lone_request_larger_than_the_bound_still_runs():
    async def main():
        batcher = make(Recorder(), wait_ms=0, max_queued_rows=3)
        result = await batcher.submit(("big", 10))
        await batcher.close()
        return result

    assert asyncio.run(main()) == "done:big"


def test_a_caller_gone_before_its_batch_runs_is_dropped_not_processed():
    recorder = Recorder(delay=0.2)
    dropped = []

    async def main():
        batcher = make(recorder, wait_ms=0, on_drop=dropped.append)
        running = asyncio.create_task(batcher.submit(("running", 1)))
        await asyncio.sleep(0.05)  # its batch runs; the next caller waits in the queue
        gone = asyncio.create_task(batcher.submit(("gone", 1)))
        await asyncio.sleep(0.01)
        gone.cancel()
        await running
        await batcher.close()
        return batcher.dropped

    assert asyncio.run(main()) == 1
    assert dropped == [("gone", 1)]
    assert [name for call in recorder.calls for name, _ in call] == ["running"]


class Unprintable(tuple):
    def __repr__(self):
        raise AssertionError("an item was formatted")


def test_a_caller_gone_while_its_batch_runs_costs_no_formatting_of_its_item():
    """Dropping looks for the caller's entry by identity: deque.remove would spell out the
    entry (a request's every row) in the error it raises for one already taken."""
    recorder = Recorder(delay=0.2)

    async def main():
        batcher = make(recorder, wait_ms=0)
        gone = asyncio.create_task(batcher.submit(Unprintable(("gone", 1))))
        await asyncio.sleep(0.05)  # its batch is running
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        await batcher.close()
        return batcher.dropped

    assert asyncio.run(main()) == 0
