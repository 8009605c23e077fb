"""Values validation accepts never make a 5xx or a non-finite number in an answer or the log.

ONNX computes in float32: a linear model fed float32's largest value overflows to inf (a
regressor) or NaN (a classifier's probabilities). Such a request is refused on its own (400
naming the row) and the requests batched with it are answered as usual.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import sqlite3

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import free_port
from tests.support.service import start_service

API_KEY = "finite-key"
HEADERS = {"Authorization": f"Bearer {API_KEY}"}
F32_MAX = float(np.finfo(np.float32).max)
INFER = "/v2/models/vigil-model/infer"
# Values at the edge of what validation accepts, and ordinary ones.
EXTREME = st.sampled_from(
    [F32_MAX, -F32_MAX, 1e38, -1e38, 5e-324, -5e-324, 1e-45, 1.17e-38, 0.0, -0.0, 1.0, -3.5]
)
TASKS = {"binary": "breast_cancer", "multiclass": "wine", "regression": "diabetes"}
ESTIMATORS = ("random_forest", "hist_gradient_boosting", "linear")


def _train(home, dataset: str, estimator: str):
    from training.data import load
    from training.train import train
    from vigil.registry import Registry
    from vigil.settings import get_settings

    settings_ = get_settings(home=home)
    outcome = train(
        settings_,
        load(None, None, dataset=dataset),
        estimator=estimator,
        n_estimators=5,
        promote=True,
    )
    assert outcome.promoted, outcome
    return Registry(settings_).load_production()


def _finite_json(value) -> bool:
    """True when ``value`` (parsed JSON) holds no NaN or infinity anywhere."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite_json(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite_json(v) for v in value)
    return True


def _logged(home) -> list[tuple]:
    with sqlite3.connect(home / "inference.sqlite3") as conn:
        return conn.execute(
            "SELECT request_id, predictions, probabilities FROM vigil_requests"
        ).fetchall()


# -- served: one request that overflows among good ones ----------------------------------------


def _serve_linear(tmp_path_factory, dataset: str):
    """A one-worker service of a linear model of ``dataset`` served by ONNX."""
    home = tmp_path_factory.mktemp(f"linear-{dataset}")
    bundle = _train(home, dataset, "linear")
    env = {"VIGIL_WORKERS": "1", "VIGIL_API_KEY": API_KEY, "VIGIL_INFERENCE": "onnx"}
    with start_service(home, free_port(), env) as svc:
        yield svc, bundle


@pytest.fixture(scope="module")
def linear_regressor(tmp_path_factory):
    yield from _serve_linear(tmp_path_factory, "diabetes")


@pytest.fixture(scope="module")
def linear_classifier(tmp_path_factory):
    """3 classes: float32 overflow gives NaN probabilities."""
    yield from _serve_linear(tmp_path_factory, "wine")


def _tensor(rows: list[dict], names: list[str]) -> dict:
    """A V2 request of ``rows`` as one [rows, features] FP64 tensor."""
    data = [row[n] for row in rows for n in names]
    return {
        "inputs": [
            {"name": "x", "datatype": "FP64", "shape": [len(rows), len(names)], "data": data}
        ]
    }


def _rows(bundle):
    good = bundle.reference[bundle.schema.names].head(1).to_dict(orient="records")[0]
    bad = dict.fromkeys(bundle.schema.names, 0.0)
    bad[bundle.schema.names[0]] = F32_MAX
    return good, bad


@pytest.mark.integration
@pytest.mark.parametrize("served", ["linear_regressor", "linear_classifier"])
def test_an_overflowing_request_is_refused_and_its_neighbours_are_answered(served, request):
    svc, bundle = request.getfixturevalue(served)
    good, bad = _rows(bundle)
    before = len(_logged(svc.home))
    with (
        httpx.Client(timeout=30, headers=HEADERS) as client,
        concurrent.futures.ThreadPoolExecutor(8) as pool,
    ):

        def post(row):
            return client.post(f"{svc.url}/predict", json={"instances": [good, row]})

        for _ in range(5):
            answers = list(pool.map(post, [bad] + [good] * 7))
            refused, rest = answers[0], answers[1:]
            assert refused.status_code == 400, refused.text
            body = refused.json()
            assert body["error"].startswith("instances[1]: ")
            assert "not a finite number" in body["error"]
            assert body["detail"][0]["loc"] == ["instances", 1]
            assert [a.status_code for a in rest] == [200] * 7, [a.text for a in rest]
            assert all(_finite_json(a.json()) for a in rest)
        # V2 refuses the row the same way, as a 400 naming it.
        v2 = client.post(f"{svc.url}{INFER}", json=_tensor([bad], bundle.schema.names))
        assert v2.status_code == 400, v2.text
        assert "not a finite number" in v2.json()["error"]
        metrics = client.get(f"{svc.url}/metrics").text
    # The good requests are logged, the refused ones are not, and the log is finite.
    logged = _logged(svc.home)
    assert len(logged) - before == 5 * 7
    for _, predictions, probabilities in logged:
        assert _finite_json(json.loads(predictions))
        assert probabilities is None or _finite_json(json.loads(probabilities))
    assert 'vigil_input_rejected_total{reason="out_of_range"} 6.0' in metrics


@pytest.mark.integration
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_served_extreme_rows_never_fail_or_answer_a_non_finite_number(linear_regressor, data):
    svc, bundle = linear_regressor
    names = bundle.schema.names
    rows = data.draw(
        st.lists(st.fixed_dictionaries({n: EXTREME for n in names}), min_size=1, max_size=4)
    )
    with httpx.Client(timeout=30, headers=HEADERS) as client:
        answer = client.post(f"{svc.url}/predict", json={"instances": rows})
        assert answer.status_code in (200, 400), answer.text
        assert _finite_json(answer.json())
        v2 = client.post(f"{svc.url}{INFER}", json=_tensor(rows, names))
        assert v2.status_code in (200, 400), v2.text
        assert _finite_json(v2.json())


# -- every task, estimator and runtime: the batch path the service runs ------------------------


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return {
        (task, estimator): _train(
            tmp_path_factory.mktemp(f"{task}-{estimator}"), dataset, estimator
        )
        for task, dataset in TASKS.items()
        for estimator in ESTIMATORS
    }


@pytest.mark.parametrize("runtime", ["onnx", "sklearn"])
@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("task", sorted(TASKS))
def test_extreme_rows_never_fail_a_batch_or_log_a_non_finite_number(
    bundles, tmp_path, task, estimator, runtime
):
    from service.errors import ApiError
    from service.predictor import Answer, Job, Predictor
    from service.validation import InstanceValidator
    from vigil.inference import load_inference
    from vigil.log import InferenceLog
    from vigil.log.prediction_ids import new_request_id

    bundle = bundles[task, estimator]
    inference = load_inference(bundle, runtime)
    assert inference.runtime == runtime
    log = InferenceLog(f"sqlite:///{tmp_path / 'log.sqlite3'}")
    log.create_schema()
    predictor = Predictor(bundle, log, None, inference)
    validator = InstanceValidator(bundle.schema, max_rows=100)
    names = bundle.schema.names
    good = bundle.reference[names].head(2).to_dict(orient="records")

    @settings(max_examples=20, deadline=None)
    @given(
        st.lists(
            st.lists(st.fixed_dictionaries({n: EXTREME for n in names}), min_size=1, max_size=3),
            min_size=1,
            max_size=4,
        )
    )
    def check(requests):
        jobs = []
        for rows in [good, *requests, good]:
            checked = validator.validate(rows)
            jobs.append(
                Job(new_request_id(), checked.records, {}, checked.columns, checked.numbers)
            )
        answers = predictor(jobs)
        for job, answer in zip(jobs, answers, strict=True):
            if isinstance(answer, ApiError):
                assert answer.status == 400, answer.error
                assert "not a finite number" in answer.error
                continue
            assert isinstance(answer, Answer)
            assert _finite_json(answer.fields), answer.fields
            assert len(answer.prediction_ids) == len(job.records)
        # The good requests at both ends are always answered.
        assert isinstance(answers[0], Answer) and isinstance(answers[-1], Answer)

    try:
        check()
        with sqlite3.connect(tmp_path / "log.sqlite3") as conn:
            for predictions, probabilities in conn.execute(
                "SELECT predictions, probabilities FROM vigil_requests"
            ):
                assert _finite_json(json.loads(predictions))
                assert probabilities is None or _finite_json(json.loads(probabilities))
    finally:
        log.close()
