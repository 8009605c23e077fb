"""One batch: prediction, the log write before any answer, metrics, and the 503 path."""

from __future__ import annotations

import json
import sqlite3

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from service.errors import ApiError
from service.metrics import ServiceMetrics
from service.predictor import Answer, Job, Predictor
from tests.service.conftest import mixed_instance
from tests.support.prom import total
from vigil.log.inference_log import InferenceLog
from vigil.log.prediction_ids import new_request_id


@pytest.fixture
def log(tmp_path):
    log = InferenceLog(f"sqlite:///{tmp_path / 'log.sqlite3'}", timeout=0.2)
    log.create_schema()
    yield log
    log.close()


def metrics_text(registry) -> str:
    return generate_latest(registry).decode()


def test_a_batch_is_predicted_logged_and_counted(mixed_bundle, log):
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry, mixed_bundle.tag)
    predictor = Predictor(mixed_bundle, log, metrics)
    jobs = [
        Job(new_request_id(), [mixed_instance(), mixed_instance(age=None, region=None)]),
        Job(new_request_id(), [mixed_instance(plan="enterprise")], unseen={"plan": 1}),
    ]
    answers = predictor(jobs)

    assert [type(a) for a in answers] == [Answer, Answer]
    assert [len(a.predictions) for a in answers] == [2, 1]
    for answer in answers:
        assert all(p in ("no", "yes") for p in answer.predictions)  # the model's own labels
        for probs, label in zip(answer.probabilities, answer.predictions, strict=True):
            assert set(probs) == {"no", "yes"}
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
            assert probs[label] == max(probs.values())
    ids = [i for a in answers for i in a.prediction_ids]
    assert len(set(ids)) == 3
    assert log.prediction_ids() == set(ids)
    # A prediction id is its request's id and its position in the request.
    assert answers[0].prediction_ids == [jobs[0].request_id + "0000", jobs[0].request_id + "0001"]
    assert answers[1].prediction_ids == [jobs[1].request_id + "0000"]

    # One record per request, its instances by feature; missing values are logged as missing
    # (null), not as an imputed number.
    with sqlite3.connect(log.url.split(":///", 1)[1]) as conn:
        records = {
            request_id: (rows, json.loads(instances), json.loads(predictions))
            for request_id, rows, instances, predictions in conn.execute(
                "SELECT request_id, row_count, instances, predictions FROM vigil_requests"
            )
        }
    assert set(records) == {job.request_id for job in jobs}
    rows, instances, predictions = records[jobs[0].request_id]
    assert rows == 2 and predictions == answers[0].predictions
    assert instances["age"][1] is None and instances["region"][1] is None
    assert instances["age"][0] == mixed_instance()["age"]
    assert records[jobs[1].request_id][1]["plan"] == ["enterprise"]

    text = metrics_text(registry)
    assert total(text, "vigil_predictions_total", model_version=mixed_bundle.tag) == 3
    assert total(text, "vigil_inference_log_rows_total") == 3
    assert total(text, "vigil_prediction_confidence_count") == 3
    assert total(text, "vigil_unseen_category_total", feature="plan") == 1
    assert total(text, "vigil_model_info", model_version=mixed_bundle.tag) == 1


@pytest.mark.parametrize("runtime", ["sklearn", "onnx"])
def test_jobs_split_by_validation_answer_and_log_as_jobs_of_records(
    mixed_bundle, tmp_path, runtime
):
    from service.validation import InstanceValidator
    from vigil.inference import load_inference

    inference = load_inference(mixed_bundle, runtime)
    assert inference.runtime == runtime
    validator = InstanceValidator(mixed_bundle.schema, max_rows=100)
    requests = [
        [mixed_instance(), mixed_instance(age=None, region=None, income=3)],
        [mixed_instance(plan="enterprise", age=61.5)],
        [mixed_instance(age=a, income=1000 * a) for a in range(20, 60, 3)],
    ]
    checked = [validator.validate(rows) for rows in requests]
    ids = [new_request_id() for _ in requests]
    logged = []
    for i, split in enumerate((False, True)):
        log = InferenceLog(f"sqlite:///{tmp_path / f'{i}.sqlite3'}")
        log.create_schema()
        jobs = [
            Job(rid, c.records, c.unseen, *((c.columns, c.numbers) if split else ()))
            for rid, c in zip(ids, checked, strict=True)
        ]
        answers = Predictor(mixed_bundle, log, None, inference)(jobs)
        with sqlite3.connect(log.url.split(":///", 1)[1]) as conn:
            rows = conn.execute(
                "SELECT request_id, instances, predictions, probabilities FROM vigil_requests "
                "ORDER BY request_id"
            ).fetchall()
        log.close()
        logged.append((answers, rows))
    assert logged[0] == logged[1]
    assert len(logged[0][1]) == len(requests)


def test_integer_classes_stay_integers(default_bundle, default_rows, log):
    answer = Predictor(default_bundle, log, None)([Job(new_request_id(), default_rows[:5])])[0]
    assert all(type(p) is int for p in answer.predictions)
    assert all(set(p) == {"0", "1"} for p in answer.probabilities)


def test_a_failed_write_answers_503_for_every_request_and_counts_it(mixed_bundle, log):
    registry = CollectorRegistry()
    predictor = Predictor(mixed_bundle, log, ServiceMetrics(registry, mixed_bundle.tag))
    locker = sqlite3.connect(log.url.split(":///", 1)[1], isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        answers = predictor(
            [
                Job(new_request_id(), [mixed_instance()] * 2),
                Job(new_request_id(), [mixed_instance()]),
            ]
        )
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert all(isinstance(a, ApiError) and a.status == 503 for a in answers)
    assert set(answers[0].body()) == {"error", "detail"}
    assert log.prediction_ids() == set()
    text = metrics_text(registry)
    assert total(text, "vigil_inference_log_failures_total") == 3
    assert total(text, "vigil_inference_log_rows_total") == 0
    assert total(text, "vigil_predictions_total") == 0


def test_one_bad_request_does_not_fail_its_batch(mixed_bundle, log):
    class Picky:
        """A pipeline that fails on any batch holding a marked instance."""

        def __init__(self, real):
            self.real = real
            self.classes_ = real.classes_

        def predict_proba(self, frame):
            if (frame["income"] == 13.0).any():
                raise ValueError("cannot")
            return self.real.predict_proba(frame)

    predictor = Predictor(mixed_bundle, log, None)
    predictor.pipeline = Picky(predictor.pipeline)
    good, bad = predictor(
        [
            Job(new_request_id(), [mixed_instance()]),
            Job(new_request_id(), [mixed_instance(income=13)]),
        ]
    )
    assert isinstance(good, Answer)
    assert isinstance(bad, ApiError) and bad.status == 500
    assert log.prediction_ids() == set(good.prediction_ids)


def test_the_fast_frame_path_matches_the_general_one(mixed_bundle):
    """vigil.schema.to_frame takes a short cut for plain validated records; same frame."""
    import pandas as pd

    from vigil.schema import to_frame

    rows = [
        mixed_instance(),
        mixed_instance(age=None, region=None, income=3),  # null, and an int for a float
        mixed_instance(plan="enterprise"),  # unseen category
    ]
    fast = to_frame(mixed_bundle.schema, rows)
    general = to_frame(mixed_bundle.schema, pd.DataFrame.from_records(rows))
    pd.testing.assert_frame_equal(fast, general)
    # Anything else takes the general path (text in a numeric column is coerced there).
    assert to_frame(mixed_bundle.schema, [mixed_instance(age="41")])["age"].tolist() == [41.0]
