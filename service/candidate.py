"""A candidate on live traffic, in one worker: which model answers a request (the canary
split), the shadow worker that scores answered requests with the other model, and following
the registry's candidate pointer (``vigil.registry.candidates``).

- Canary: a request whose id hashes below ``percent`` is answered by the candidate. The hash
  is SHA-256 of the request id, so the split is the same on every replica and process.
- Shadow (and the canary's pairing): after a request is answered, the model that did not
  answer it scores it too, in a thread of its own, and that prediction goes to
  ``shadow_predictions`` under the same request id. The answer never waits for it. The queue
  is bounded in rows: when the worker falls behind, new rows are skipped and counted
  (``vigil_shadow_skipped_rows_total``). A candidate that fails to load or to predict is
  logged and counted (``vigil_candidate_failures_total{stage}``) and serving goes on.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vigil.log.shadow import ShadowLog, ShadowRecord
from vigil.registry.candidates import CANARY, Candidates
from vigil.registry.store import Registry

if TYPE_CHECKING:
    from service.predictor import Job
    from service.runtime import Model, Runtime

logger = logging.getLogger(__name__)

CHECK_SECONDS = 1.0
RETRY_SECONDS = 10.0
_SCALE = 10_000  # the split's resolution: 0.01 %


def canary_bucket(request_id: str) -> int:
    """The request's place in 0 .. 9999, the same in every process."""
    digest = hashlib.sha256(request_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % _SCALE


def in_canary(request_id: str, percent: float) -> bool:
    return canary_bucket(request_id) < round(percent * _SCALE / 100)


@dataclass(frozen=True)
class ActiveCandidate:
    """What this worker runs: the candidate's serving path and how it is used."""

    mode: str  # shadow | canary
    percent: float
    model: Model

    @property
    def tag(self) -> str:
        return self.model.bundle.tag

    def route(self, request_id: str, production: Model) -> tuple[Model, Model]:
        """(the model that answers, the model that scores it afterwards)."""
        if self.mode == CANARY and in_canary(request_id, self.percent):
            return self.model, production
        return production, self.model


class ShadowWorker:
    """Scores answered requests with another model, off the answer's path, at most
    ``max_queued_rows`` rows behind; ``offer`` never blocks."""

    def __init__(self, log: ShadowLog, metrics, *, max_queued_rows: int, batch_rows: int):
        self.log = log
        self.metrics = metrics
        self.max_queued_rows = max(1, max_queued_rows)
        self.batch_rows = max(1, batch_rows)
        self._queue: collections.deque[tuple[Model, Job]] = collections.deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.scored = self.skipped = self.failed = 0  # rows, for tests and the benchmark
        self._failing: str | None = None  # the version whose failure was last logged
        self._busy = False

    def offer(self, model: Model, job: Job) -> bool:
        """Queue ``job`` for ``model``; False (and counted) when the queue is full."""
        rows = len(job.records)
        with self._cond:
            if self._closing or self._queued_rows + rows > self.max_queued_rows:
                self.skipped += rows
                if self.metrics is not None:
                    self.metrics.shadow_skipped.inc(rows)
                return False
            self._queue.append((model, job))
            self._queued_rows += rows
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vigil-shadow", daemon=True)
                self._thread.start()
            self._cond.notify()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop; what is still queued is dropped (a shadow row is whole or absent)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._busy

    def _take(self) -> list[tuple[Model, Job]] | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if self._closing:
                return None
            batch = [self._queue.popleft()]
            rows = len(batch[0][1].records)
            model = batch[0][0]
            while self._queue and self._queue[0][0] is model:
                nxt = len(self._queue[0][1].records)
                if rows + nxt > self.batch_rows:
                    break
                batch.append(self._queue.popleft())
                rows += nxt
            self._queued_rows -= rows
            self._busy = True
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                self._score(batch[0][0], [job for _, job in batch])
            except Exception:  # never stop scoring on a bug; counted in _score
                logger.exception("shadow scoring failed")
            finally:
                with self._cond:
                    self._busy = False

    def _score(self, model: Model, jobs: list[Job]) -> None:
        from service.predictor import _batch_columns, finite_rows

        tag, rows = model.bundle.tag, sum(len(job.records) for job in jobs)
        stage = "predict"
        try:
            columns, numbers = _batch_columns(jobs)
            inference = model.inference
            outputs = inference.predict(columns, rows, numbers)
            keys = [str(c) for c in inference.classes]
            predictions, probabilities = inference.task.log_outputs(outputs, keys)
            finite = finite_rows(outputs)
            now, start, records = time.time(), 0, []
            for job in jobs:
                part = slice(start, start + len(job.records))
                start = part.stop
                if not finite[part].all():
                    continue  # as the answering model refuses it: whole or absent
                records.append(
                    ShadowRecord(
                        job.request_id,
                        tag,
                        now,
                        predictions[part],
                        {k: v[part] for k, v in probabilities.items()},
                    )
                )
            stage = "log"
            self.log.write(records)
        except Exception as exc:
            self.failed += rows
            if self.metrics is not None:
                self.metrics.candidate_failure(tag, stage, rows)
            if self._failing != tag:  # once per model, not once per batch
                logger.error(
                    "candidate %s failed to %s %d rows (%s: %s); serving is unaffected",
                    tag, stage, rows, type(exc).__name__, str(exc)[:300],
                )  # fmt: skip
                self._failing = tag
            return
        self._failing = None
        self.scored += rows
        if self.metrics is not None:
            self.metrics.shadow_rows.inc(rows)


class CandidateFollower:
    """Follows the candidate pointer once a second: loads the candidate in a thread (the
    worker keeps answering meanwhile), then starts or stops it; a candidate that fails to load
    is logged, counted and retried every ``retry`` seconds, and serving goes on."""

    def __init__(
        self,
        settings,
        current: Callable[[], Runtime | None],
        *,
        retry: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        candidates: Candidates | None = None,
    ):
        self.candidates = candidates or Candidates(Registry(settings))
        self.current = current
        self.retry = retry
        self.clock = clock
        self._seen: int | None = None
        self._due: float | None = None
        self._unreachable = False

    async def run(self, interval: float = CHECK_SECONDS) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                logger.exception("candidate check failed")
            await asyncio.sleep(interval)

    async def check(self) -> bool:
        """One look; True when this worker's candidate changed."""
        runtime = self.current()
        if runtime is None:
            return False
        try:
            pointer = await asyncio.to_thread(self.candidates.current)
        except Exception as exc:
            if not self._unreachable:
                logger.warning("cannot read the candidate pointer (%s)", exc)
            self._unreachable = True
            return False
        self._unreachable = False
        now = self.clock()
        if pointer.revision != self._seen:
            self._seen, self._due = pointer.revision, now
        if self._due is None or now < self._due:
            return False
        running = runtime.candidate
        if not pointer.active:
            self._due = None
            if running is None:
                return False
            await runtime.set_candidate(None)
            return True
        if running is not None and running.tag == pointer.tag:
            self._due = None
            if (running.mode, running.percent) == (pointer.mode, pointer.percent):
                return False
            await runtime.set_candidate(
                ActiveCandidate(pointer.mode, pointer.percent, running.model)
            )
            return True
        try:
            model = await asyncio.to_thread(runtime.load, pointer.tag)
        except Exception as exc:
            if runtime.metrics is not None:
                runtime.metrics.candidate_failure(pointer.tag, "load", 0)
            logger.error(
                "cannot load candidate %s (%s: %s); serving goes on without it, retrying in %.0f s",
                pointer.tag, type(exc).__name__, str(exc)[:300], self.retry,
            )  # fmt: skip
            self._due = now + self.retry
            return False
        self._due = None
        await runtime.set_candidate(ActiveCandidate(pointer.mode, pointer.percent, model))
        return True
