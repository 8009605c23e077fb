"""An in-worker micro-batcher: concurrent requests share one model call and one log write.

Each request is submitted whole (never split across batches) and gets its own result. The batch
function runs in one thread, so the event loop keeps accepting requests meanwhile; requests that
arrive during a batch form the next one. A batch closes as soon as one of these holds:

- it has ``max_rows`` rows;
- it has as many rows as the previous batch plus those queued when that batch ended: callers
  just answered tend to come straight back, and waiting for them merges what would otherwise
  be two alternating half-size batches (one model call costs about the same for 1 row or 50);
- ``wait_ms`` have passed since the later of its oldest arrival and the previous batch's end.

Overload sheds instead of queueing: past ``max_queued_rows`` rows waiting, ``submit`` raises
``BatcherFull`` at once (the caller answers 503). A caller that goes away before its batch
runs is dropped from the queue: its item is never processed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
logger = logging.getLogger(__name__)


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new work."""


class BatcherFull(RuntimeError):
    """The queue holds ``max_queued_rows`` rows already: shed this item."""


@dataclass
class _Pending(Generic[T]):
    item: T
    rows: int
    future: asyncio.Future
    queued_at: float


class MicroBatcher(Generic[T, R]):
    """``process(items) -> results`` (same length and order; a result may be an exception
    instance, raised to that item's caller) is called with up to ``max_rows`` rows at a time."""

    def __init__(
        self,
        process: Callable[[list[T]], Sequence[R | BaseException]],
        *,
        max_rows: int,
        wait_ms: float,
        rows: Callable[[T], int] = lambda _: 1,
        name: str = "batcher",
        max_queued_rows: int | None = None,
        on_drop: Callable[[T], None] = lambda item: None,
    ):
        self.process = process
        self.max_rows = max(1, max_rows)
        self.wait = max(0.0, wait_ms) / 1000
        self.rows = rows
        # A lone item larger than the bound still gets in when the queue is empty.
        self.max_queued_rows = max_queued_rows
        self.on_drop = on_drop
        self._queue: collections.deque[_Pending[T]] = collections.deque()
        self._queued_rows = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closing = False
        self._last_done = 0.0
        self._expected = 1  # rows worth waiting for; see the module docstring
        # One thread: batches run one after another, in submission order.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.batches = 0  # for tests and the benchmark: how many calls of ``process``
        self.batched_items = 0
        self.dropped = 0  # callers gone before their batch ran

    async def submit(self, item: T) -> R:
        if self._closing:
            raise BatcherClosed("shutting down")
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            if self._task is not None:  # a bug, not a request: keep serving, but say so
                logger.error("batch loop had stopped (%r); restarting it", self._task)
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._run())
        rows = self.rows(item)
        if (
            self.max_queued_rows is not None
            and self._queue
            and self._queued_rows + rows > self.max_queued_rows
        ):
            raise BatcherFull(f"{self._queued_rows} rows queued")
        pending = _Pending(item, rows, loop.create_future(), loop.time())
        self._queue.append(pending)
        self._queued_rows += pending.rows
        # Wake the loop only when it idles or the batch is complete: not once per request.
        if len(self._queue) == 1 or self._queued_rows >= self._target():
            self._wakeup.set()
        # Shielded: a caller that goes away (client disconnect, timeout) must not cancel the
        # shared batch. Still queued, its item is dropped; already in a running batch, it is
        # processed and logged, just not acknowledged.
        try:
            return await asyncio.shield(pending.future)
        except asyncio.CancelledError:
            self._drop(pending)
            raise

    def _drop(self, pending: _Pending[T]) -> None:
        # By identity: deque.remove compares entries field by field, and the error it raises
        # for an entry already taken spells out the whole entry (a request's every row).
        index = next((i for i, queued in enumerate(self._queue) if queued is pending), None)
        if index is None:
            return  # taken by a batch already
        del self._queue[index]
        self._queued_rows -= pending.rows
        self.dropped += 1
        pending.future.cancel()
        self.on_drop(pending.item)

    async def close(self) -> None:
        """Take no new work, finish everything queued, stop the thread."""
        self._closing = True
        if self._task is not None:
            self._wakeup.set()
            await self._task
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._gather_company(loop)
            batch = self._take()
            try:
                results = await loop.run_in_executor(
                    self._executor, self.process, [p.item for p in batch]
                )
                if len(results) != len(batch):
                    raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
            except Exception as exc:  # every caller of the batch must hear about it
                logger.exception("batch of %d failed", len(batch))
                results = [exc] * len(batch)
            self._last_done = loop.time()
            self._expected = sum(p.rows for p in batch) + self._queued_rows
            self.batches += 1
            self.batched_items += len(batch)
            for pending, result in zip(batch, results, strict=True):
                if pending.future.done():
                    continue
                if isinstance(result, BaseException):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)

    def _target(self) -> int:
        return min(self.max_rows, max(1, self._expected))

    async def _gather_company(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until the batch is complete or has waited long enough (module docstring)."""
        deadline = max(self._queue[0].queued_at, self._last_done) + self.wait
        while self._queued_rows < self._target() and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Pending[T]]:
        batch = [self._queue.popleft()]
        rows = batch[0].rows
        while self._queue and rows + self._queue[0].rows <= self.max_rows:
            pending = self._queue.popleft()
            rows += pending.rows
            batch.append(pending)
        self._queued_rows -= rows
        return batch

    def stats(self) -> dict[str, Any]:
        return {"batches": self.batches, "items": self.batched_items}
