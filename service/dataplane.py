"""The one prediction path that ``/predict`` and the Open Inference Protocol's infer both take:
pick the model (a canary answers its share), validate with that model's validator, hand the
job to its micro-batcher (which logs every row before it is answered), then offer the answered
request to the other model (shadow scoring). Overload sheds: a 503 with Retry-After.

The HTTP layers only decode before and encode after: ``service.app`` for ``/predict``,
``service.v2.endpoint`` for V2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from service.batcher import BatcherClosed, BatcherFull
from service.errors import overloaded
from service.predictor import Answer, Job
from service.served_model import Model
from service.validation import Instances
from service.worker import WorkerState


@dataclass(frozen=True)
class Predicted:
    model: Model  # the model that answered
    answer: Answer


async def predict(
    state: WorkerState,
    request_id: str,
    validate: Callable[[Model], Instances],
    *,
    model: Model | None = None,
    split: bool = True,
    on_shed: Callable[[str], None] = lambda reason: None,
) -> Predicted:
    """Answer one request; raises ``ApiError`` (a bad input, or 503 under overload).
    ``validate(model)`` checks the request for the model that will answer it. ``model``:
    production as taken once for this request (default: the one served now); without
    ``split`` (a request that names its version) the canary does not answer it."""
    answering, other = state.route(request_id, model or state.model, split=split)
    checked = validate(answering)
    if checked.folded and state.metrics is not None:
        state.metrics.unseen_folded_categories(checked.folded)
    job = Job(request_id, checked.records, checked.unseen, checked.columns, checked.numbers)
    try:
        answer = await answering.batcher.submit(job)
    except BatcherFull:
        on_shed("queued_rows")
        raise overloaded("server busy: too many rows queued; retry shortly") from None
    except BatcherClosed:
        raise overloaded("service is shutting down; retry") from None
    state.answered(job, other)
    return Predicted(answering, answer)
