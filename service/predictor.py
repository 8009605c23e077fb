"""One batch of requests: one model call, one inference-log transaction, then answers.

Runs in the batcher's thread. A request is answered only from here, and only after its rows are
durably logged: if the write fails every request of the batch gets a 503 instead of a 200.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from service.errors import ApiError
from service.metrics import ServiceMetrics
from vigil.inference import OnnxInference, SklearnInference
from vigil.log.inference_log import InferenceLog, InferenceLogError, LogRecord
from vigil.log.prediction_ids import prediction_ids
from vigil.registry.store import ModelBundle
from vigil.schema import record_columns
from vigil.tasks import Outputs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    request_id: str  # a UUIDv7 (vigil.log.prediction_ids.new_request_id): the log's record key
    records: list[dict[str, Any]]
    unseen: dict[str, int] = field(default_factory=dict)  # feature -> instances
    # The records by feature, and the numeric ones as float64, as validation made them
    # (service.validation.Instances); split here when absent.
    columns: dict[str, list[Any]] | None = None
    numbers: np.ndarray | None = None


@dataclass(frozen=True)
class Answer:
    fields: dict[str, Any]  # the task's keys: predictions (and probabilities for classifiers)
    prediction_ids: list[str]

    @property
    def predictions(self) -> list[Any]:
        return self.fields["predictions"]

    @property
    def probabilities(self) -> list[dict[str, float]] | None:
        return self.fields.get("probabilities")


class Predictor:
    def __init__(
        self,
        bundle: ModelBundle,
        log: InferenceLog | None,
        metrics: ServiceMetrics | None,
        inference: SklearnInference | OnnxInference | None = None,
    ):
        self.tag = bundle.tag
        self.schema = bundle.schema
        self.inference = inference or SklearnInference(bundle)
        self.task = self.inference.task
        self.classes: list[Any] = self.inference.classes
        self.keys = [str(c) for c in self.classes]
        self.log = log  # None only with VIGIL_UNSAFE_DISABLE_LOGGING (the benchmark)
        self.metrics = metrics

    @property
    def pipeline(self) -> Any:
        """The scikit-learn pipeline, when scikit-learn serves (None with ONNX)."""
        return getattr(self.inference, "pipeline", None)

    @pipeline.setter
    def pipeline(self, value: Any) -> None:
        self.inference.pipeline = value

    def __call__(self, jobs: list[Job]) -> list[Answer | ApiError]:
        try:
            # By feature once: the model's input and the log's records share the columns.
            columns, numbers = batch_columns(jobs)
            outputs = self._predict(columns, sum(len(job.records) for job in jobs), numbers)
            return self._answer(jobs, columns, outputs)
        except Exception:
            if len(jobs) == 1:
                raise
            # One odd request must not fail its neighbours: answer each on its own. Nothing
            # was logged: whatever fails runs before the log's one transaction, or inside it.
            logger.exception("batch prediction failed; retrying request by request")
            return [self._one(job) for job in jobs]

    def _one(self, job: Job) -> Answer | ApiError:
        try:
            columns, numbers = batch_columns([job])
            outputs = self._predict(columns, len(job.records), numbers)
            return self._answer([job], columns, outputs)[0]
        except Exception:
            logger.exception("prediction failed for request %s", job.request_id)
            return ApiError(500, "prediction failed; see the server log")

    def _predict(
        self, columns: Mapping[str, list[Any]], rows: int, numbers: np.ndarray | None
    ) -> Outputs:
        return self.inference.predict(columns, rows, numbers)

    def _answer(
        self, jobs: list[Job], columns: Mapping[str, list[Any]], outputs: Outputs
    ) -> list[Answer | ApiError]:
        task, keys = self.task, self.keys
        predictions, probabilities = task.log_outputs(outputs, keys)
        # Each job's slice of the batch: one log record and one answer per request.
        bounds = np.cumsum([0] + [len(job.records) for job in jobs]).tolist()
        slices = [slice(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
        # A request whose answer is not finite is refused on its own, neither logged nor
        # answered; its neighbours go on. Answers are made before the log write, so nothing
        # can fail once rows are logged.
        finite = finite_rows(outputs)
        results: list[Answer | ApiError] = [
            Answer(
                task.answer(outputs, rows, keys), prediction_ids(job.request_id, len(job.records))
            )
            if finite[rows].all()
            else not_finite(int(np.argmin(finite[rows])))
            for job, rows in zip(jobs, slices, strict=True)
        ]
        kept = [
            (job, rows)
            for job, rows, result in zip(jobs, slices, results, strict=True)
            if isinstance(result, Answer)
        ]
        logged = sum(len(job.records) for job, _ in kept)
        if self.log is not None and kept:
            now = time.time()
            records = [
                LogRecord(
                    request_id=job.request_id,
                    model_version=self.tag,
                    created_at=now,
                    instances=(
                        job.columns
                        if job.columns is not None
                        else {name: values[rows] for name, values in columns.items()}
                    ),
                    predictions=predictions[rows],
                    probabilities={k: v[rows] for k, v in probabilities.items()},
                )
                for job, rows in kept
            ]
            try:
                self.log.write(records)
            except InferenceLogError as exc:
                logger.error("inference log write failed for %d rows: %s", logged, exc)
                if self.metrics is not None:
                    self.metrics.log_failures.inc(logged)
                msg = "inference log unavailable: prediction not recorded, retry"
                return [
                    ApiError(503, msg) if isinstance(result, Answer) else result
                    for result in results
                ]
        if self.metrics is not None:
            self.metrics.log_rows.inc(logged)
            if kept:
                task.count(self.metrics, _rows_of(outputs, finite), keys, self.tag)
            for job, _ in kept:
                if job.unseen:
                    self.metrics.unseen_categories(job.unseen)
        return results


def finite_rows(outputs: Outputs) -> np.ndarray:
    """Per row: are its prediction and probabilities finite numbers? A model that computes in
    float32 (ONNX) can overflow on values validation accepts (float32's largest, say)."""
    ok = np.ones(len(outputs), dtype=bool)
    if outputs.proba is not None:
        ok &= np.isfinite(outputs.proba).all(axis=1)
    predictions = np.asarray(outputs.predictions)
    if predictions.dtype.kind in "fc":
        ok &= np.isfinite(predictions)
    return ok


def _rows_of(outputs: Outputs, keep: np.ndarray) -> Outputs:
    if keep.all():
        return outputs
    return Outputs(
        [p for p, k in zip(outputs.predictions, keep.tolist(), strict=True) if k],
        None if outputs.proba is None else outputs.proba[keep],
        None if outputs.top is None else outputs.top[keep],
    )


def not_finite(row: int) -> ApiError:
    msg = (
        "the model's output is not a finite number for these feature values (some are too "
        "large in magnitude for it); send values nearer the training data's range"
    )
    return ApiError(
        400, f"instances[{row}]: {msg}", [{"loc": ["instances", row], "msg": msg}],
        reason="out_of_range",
    )  # fmt: skip


def batch_columns(jobs: list[Job]) -> tuple[Mapping[str, list[Any]], np.ndarray | None]:
    """The jobs' records by feature, and their numbers when every job has them. The columns
    validation made are joined instead of splitting every record again."""
    first = jobs[0].columns
    if first is None or any(
        job.columns is None or job.columns.keys() != first.keys() for job in jobs
    ):
        return record_columns([r for job in jobs for r in job.records]), None
    numbers = [job.numbers for job in jobs]
    joined = None if any(n is None for n in numbers) else np.concatenate(numbers, axis=1)
    if len(jobs) == 1:
        return first, joined
    return _JoinedColumns([job.columns for job in jobs]), joined


class _JoinedColumns(Mapping[str, list[Any]]):
    """Columns of several jobs as one, each joined when first read: ONNX fed from the numbers
    reads only the categorical ones, and the log takes each job's own."""

    def __init__(self, parts: list[dict[str, list[Any]]]):
        self.parts = parts
        self.joined: dict[str, list[Any]] = {}

    def __getitem__(self, name: str) -> list[Any]:
        if name not in self.joined:
            self.joined[name] = list(chain.from_iterable(part[name] for part in self.parts))
        return self.joined[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.parts[0])

    def __len__(self) -> int:
        return len(self.parts[0])
