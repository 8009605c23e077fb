"""Metric objects on a fresh registry, and the rewriting of BentoML's own error bodies."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from service.errors import ApiError
from service.json_http import parse_json, reshape
from service.metrics import CONFIDENCE_BUCKETS, REJECT_REASONS, ServiceMetrics, observe_many
from tests.support.prom import total


def test_metric_names_and_labels_follow_the_contract():
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry, "vigil-model:abc")
    metrics.classes_predicted(["0", "1"], np.array([0, 1, 1]), np.array([0.9, 0.6, 0.99]))
    metrics.reject("non_finite")
    metrics.reject("something-else")  # unknown reasons fold into one bounded value
    metrics.unseen_categories({"plan": 2})
    metrics.log_rows.inc(3)
    metrics.feedback.inc()
    text = generate_latest(registry).decode()
    v = "vigil-model:abc"
    assert total(text, "vigil_model_info", model_version=v) == 1
    assert total(text, "vigil_predictions_total", model_version=v, predicted_class="1") == 2
    assert total(text, "vigil_predictions_total", model_version=v, predicted_class="0") == 1
    assert total(text, "vigil_prediction_confidence_count", model_version=v) == 3
    assert total(text, "vigil_input_rejected_total", reason="non_finite") == 1
    assert total(text, "vigil_input_rejected_total", reason="malformed") == 1
    assert total(text, "vigil_unseen_category_total", feature="plan") == 2
    assert total(text, "vigil_inference_log_rows_total") == 3
    assert total(text, "vigil_inference_log_failures_total") == 0
    assert total(text, "vigil_feedback_labels_total") == 1
    # Every reason is exported from the start (zero), so rates and alerts see it.
    for reason in REJECT_REASONS:
        assert f'vigil_input_rejected_total{{reason="{reason}"}}' in text


def test_observe_many_matches_observe():
    rng = random.Random(3)
    values = [rng.choice([0.2, 0.5, 0.95, 0.951, 0.99, 1.0]) for _ in range(500)]
    values += [rng.random() for _ in range(500)]
    one, many = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("h", "h", buckets=CONFIDENCE_BUCKETS, registry=one)
    h2 = Histogram("h", "h", buckets=CONFIDENCE_BUCKETS, registry=many)
    for value in values:
        h1.observe(value)
    observe_many(h2, values)
    a, b = generate_latest(one).decode(), generate_latest(many).decode()
    for name in ("h_bucket", "h_count"):
        for le in [*map(str, CONFIDENCE_BUCKETS), "+Inf"]:
            assert total(a, name, le=le) == total(b, name, le=le)
    assert abs(total(a, "h_sum") - total(b, "h_sum")) < 1e-6


def test_reshape_pydantic_errors_from_bentoml():
    bentoml_body = {
        "error": "1 validation error for Input",
        "detail": [{"type": "missing", "loc": ["instances"], "msg": "Field required", "url": "x"}],
    }
    body, reason = reshape(400, json.dumps(bentoml_body).encode())
    assert json.loads(body) == {
        "error": "instances: Field required",
        "detail": [{"loc": ["instances"], "msg": "Field required"}],
    }
    assert reason == "missing_field"

    invalid = {"detail": [{"type": "json_invalid", "loc": [], "msg": "Invalid JSON: EOF"}]}
    body, reason = reshape(400, json.dumps(invalid).encode())
    assert reason == "malformed"
    assert json.loads(body)["error"].startswith("malformed JSON")


def test_reshape_other_bentoml_bodies_and_leaves_ours_alone():
    body, reason = reshape(415, b'[{"error": "pickle is not allowed"}]')
    assert json.loads(body) == {"error": "pickle is not allowed", "detail": []}
    body, reason = reshape(405, b"Method Not Allowed")
    assert json.loads(body) == {"error": "method not allowed (HTTP 405)", "detail": []}
    assert reason is None  # not a rejected input
    body, _ = reshape(504, b'{"error": "Not able to process the request in 60 seconds"}')
    assert json.loads(body)["error"].startswith("Not able to process") and "detail" in json.loads(
        body
    )
    ours = json.dumps({"error": "x", "detail": [{"loc": ["a"], "msg": "m"}]}).encode()
    assert reshape(400, ours) == (ours, None)


@pytest.mark.parametrize(
    ("body", "by_pydantic"),
    [
        (b'{"instances": [{"a": 1, "b": -0.0, "c": 1e-7, "d": null, "e": "x\\u00e9"}]}', True),
        (b'{"a": 1, "a": 2.5}', True),  # the last duplicate wins, for both parsers
        (b"[NaN, Infinity, -Infinity, 1e400]", True),
        (b"[" + b"1" * 4000 + b"]", True),
        (b'\xef\xbb\xbf{"a": 1}', False),  # a BOM: json.loads takes it
        (b'["\\ud800"]', False),  # a lone surrogate
        ('{"a": "\u00e9"}'.encode("utf-16"), False),
        (b"[" * 500 + b"]" * 500, False),  # deeper than pydantic's parser goes
    ],
)
def test_parse_json_gives_json_loads_values(body, by_pydantic):
    parsed = parse_json(body)
    assert parsed.by_pydantic is by_pydantic
    # NaN is not equal to itself: compare the texts.
    assert repr(parsed.value) == repr(json.loads(body))


@pytest.mark.parametrize(
    "body", [b"", b"{", b"[1,]", b'{"a": 1} x', b'"\xff"', b"[" + b"1" * 5000 + b"]", b"[" * 10**5]
)
def test_parse_json_refuses_what_json_loads_refuses(body):
    with pytest.raises(ApiError) as info:
        parse_json(body)
    assert info.value.status == 400 and info.value.reason == "malformed"
    assert info.value.error.startswith("malformed JSON")
