"""One batch of requests: one ``predict_proba``, one inference-log transaction, then answers.

Runs in the batcher's thread. A request is answered only from here, and only after its rows are
durably logged: if the write fails every request of the batch gets a 503 instead of a 200.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.errors import ApiError
from service.metrics import ServiceMetrics
from vigil.inference_log import InferenceLog, InferenceLogError, LogRow
from vigil.registry import ModelBundle
from vigil.schema import to_frame

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    request_id: str
    records: list[dict[str, Any]]
    unseen: dict[str, int] = field(default_factory=dict)  # feature -> instances


@dataclass(frozen=True)
class Answer:
    predictions: list[Any]
    probabilities: list[dict[str, float]]
    prediction_ids: list[str]


def new_ids(n: int) -> list[str]:
    """``n`` UUIDv7s as 32 hex digits: unix milliseconds first, then 74 random bits.

    Time-ordered on purpose: the log's unique index on prediction_id then grows at one end, as
    with an autoincrement key. Random ids (uuid4) scatter every batch over the whole index;
    with a few hundred thousand rows that doubled the cost of a write.
    """
    ms = time.time_ns() // 1_000_000
    raw = os.urandom(10 * n)
    ids = []
    for i in range(n):
        rand = int.from_bytes(raw[10 * i : 10 * i + 10], "big")  # 80 bits, 74 used
        value = (ms << 80) | (0x7 << 76) | ((rand >> 68) << 64) | (0b10 << 62)
        ids.append(f"{value | (rand & _RAND_B):032x}")
    return ids


_RAND_B = (1 << 62) - 1


class Predictor:
    def __init__(
        self,
        bundle: ModelBundle,
        log: InferenceLog | None,
        metrics: ServiceMetrics | None,
    ):
        self.tag = bundle.tag
        self.schema = bundle.schema
        self.pipeline = bundle.pipeline
        self.classes: list[Any] = self.pipeline.classes_.tolist()  # numpy ints -> Python ints
        self.keys = [str(c) for c in self.classes]
        self.log = log  # None only with VIGIL_UNSAFE_DISABLE_LOGGING (the benchmark)
        self.metrics = metrics

    def __call__(self, jobs: list[Job]) -> list[Answer | ApiError]:
        records = [r for job in jobs for r in job.records]
        try:
            proba = self._predict(records)
        except Exception:
            if len(jobs) == 1:
                raise
            # One odd request must not fail its neighbours: answer each on its own.
            logger.exception("batch prediction failed; retrying request by request")
            return [self._one(job) for job in jobs]
        return self._answer(jobs, proba)

    def _one(self, job: Job) -> Answer | ApiError:
        try:
            return self._answer([job], self._predict(job.records))[0]
        except Exception:
            logger.exception("prediction failed for request %s", job.request_id)
            return ApiError(500, "prediction failed; see the server log")

    def _predict(self, records: list[dict[str, Any]]) -> np.ndarray:
        return self.pipeline.predict_proba(to_frame(self.schema, records))

    def _answer(self, jobs: list[Job], proba: np.ndarray) -> list[Answer | ApiError]:
        top = proba.argmax(axis=1)
        labels = [self.classes[i] for i in top.tolist()]
        confidence = proba[np.arange(len(top)), top].tolist()
        probabilities = [dict(zip(self.keys, row, strict=True)) for row in proba.round(6).tolist()]
        ids = new_ids(len(labels))
        if self.log is not None:
            now = time.time()
            rows, i = [], 0
            for job in jobs:
                for record in job.records:
                    rows.append(
                        LogRow(
                            prediction_id=ids[i],
                            request_id=job.request_id,
                            model_version=self.tag,
                            created_at=now,
                            inputs=record,
                            prediction=labels[i],
                            probabilities=probabilities[i],
                        )
                    )
                    i += 1
            try:
                self.log.write(rows)
            except InferenceLogError as exc:
                logger.error("inference log write failed for %d rows: %s", len(rows), exc)
                if self.metrics is not None:
                    self.metrics.log_failures.inc(len(rows))
                msg = "inference log unavailable: prediction not recorded, retry"
                return [ApiError(503, msg) for _ in jobs]
        if self.metrics is not None:
            self.metrics.log_rows.inc(len(labels))
            self.metrics.predicted(labels, confidence, self.tag)
            for job in jobs:
                if job.unseen:
                    self.metrics.unseen_categories(job.unseen)
        answers: list[Answer | ApiError] = []
        start = 0
        for job in jobs:
            end = start + len(job.records)
            answers.append(Answer(labels[start:end], probabilities[start:end], ids[start:end]))
            start = end
        return answers
