"""The shadow worker: after a request is answered, the model that did not answer it scores it
too, in a thread of its own, and that prediction goes to ``shadow_predictions`` under the same
request id. The answer never waits for it. The queue is bounded in rows: when the worker falls
behind, new rows are skipped and counted (``vigil_shadow_skipped_rows_total``). A candidate that
fails to predict is logged and counted (``vigil_candidate_failures_total{stage}``) and serving
goes on."""

from __future__ import annotations

import collections
import logging
import threading
import time

from service.predictor import Job, batch_columns, finite_rows
from service.served_model import Model
from vigil.log.shadow import ShadowLog, ShadowRecord

logger = logging.getLogger(__name__)


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
        tag, rows = model.bundle.tag, sum(len(job.records) for job in jobs)
        stage = "predict"
        try:
            columns, numbers = batch_columns(jobs)
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
