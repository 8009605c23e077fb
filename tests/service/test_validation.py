"""Request validation, straight against service.validation with a numeric+categorical schema."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.errors import ApiError
from service.validation import InstanceValidator, feedback_labels
from tests.service.conftest import mixed_instance
from vigil.tasks import CLASSIFIER, REGRESSOR


@pytest.fixture
def validator(mixed_bundle) -> InstanceValidator:
    return InstanceValidator(mixed_bundle.schema, max_rows=5)


def rejected(validator, instances) -> ApiError:
    with pytest.raises(ApiError) as info:
        validator.validate(instances)
    error = info.value
    body = error.body()
    # The contract's shape, exactly: one line, and loc/msg per problem.
    assert set(body) == {"error", "detail"}
    assert "\n" not in body["error"] and body["error"]
    assert body["detail"] and all(set(d) == {"loc", "msg"} for d in body["detail"])
    return error


def test_schema_has_both_kinds(mixed_bundle):
    assert mixed_bundle.schema.numeric == ["age", "income"]
    assert mixed_bundle.schema.categorical == ["plan", "region"]


def test_valid_instances_pass_unchanged(validator):
    rows = [mixed_instance(), mixed_instance(age=12, plan="pro")]
    checked = validator.validate(rows)
    assert checked.records == rows
    assert checked.unseen == {}


def test_absent_key_is_an_error_with_its_location(validator):
    row = mixed_instance()
    del row["plan"]
    error = rejected(validator, [mixed_instance(), mixed_instance(), mixed_instance(), row])
    assert error.status == 400 and error.reason == "missing_field"
    assert error.detail[0]["loc"] == ["instances", 3, "plan"]
    assert error.error.startswith("instances[3].plan:")


def test_unknown_key_is_an_error(validator):
    error = rejected(validator, [mixed_instance(colour="red")])
    assert error.status == 400 and error.reason == "unknown_field"
    assert error.detail[0]["loc"] == ["instances", 0, "colour"]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("age", "35", "wrong_type"),  # string for numeric
        ("age", True, "wrong_type"),  # bool for numeric
        ("age", [1.0], "wrong_type"),
        ("age", {"v": 1}, "wrong_type"),
        ("plan", 3, "wrong_type"),  # number for categorical
        ("plan", 2.5, "wrong_type"),
        ("plan", False, "wrong_type"),  # bool for categorical
        ("age", math.nan, "non_finite"),
        ("age", math.inf, "non_finite"),
        ("income", -math.inf, "non_finite"),
        ("income", 10**400, "non_finite"),  # an integer no float can hold
    ],
)
def test_wrong_types_and_non_finite_numbers(validator, field, value, reason):
    error = rejected(validator, [mixed_instance(**{field: value})])
    assert error.status == 400
    assert error.reason == reason
    assert error.detail[0]["loc"] == ["instances", 0, field]


def test_every_problem_is_listed(validator):
    rows = [mixed_instance(age="x"), mixed_instance(), mixed_instance(plan=1, income=math.nan)]
    error = rejected(validator, rows)
    assert [d["loc"] for d in error.detail] == [
        ["instances", 0, "age"],
        ["instances", 2, "income"],
        ["instances", 2, "plan"],
    ]
    assert "(and 2 more problems)" in error.error


def test_empty_list_is_400(validator):
    error = rejected(validator, [])
    assert error.status == 400 and error.reason == "empty"
    assert error.detail[0]["loc"] == ["instances"]


def test_more_than_max_rows_is_413(validator):
    error = rejected(validator, [mixed_instance()] * 6)
    assert error.status == 413 and error.reason == "too_many_rows"
    validator.validate([mixed_instance()] * 5)  # the limit itself is fine


@pytest.mark.parametrize("instances", [None, "rows", {"age": 1}, 3])
def test_instances_must_be_a_list(validator, instances):
    error = rejected(validator, instances)
    assert error.status == 400 and error.reason == "wrong_type"


@pytest.mark.parametrize("item", [1, "row", None, [1, 2]])
def test_each_instance_must_be_an_object(validator, item):
    error = rejected(validator, [mixed_instance(), item])
    assert error.detail[0]["loc"] == ["instances", 1]


def test_null_is_a_missing_value_not_an_error(validator):
    row = mixed_instance(age=None, plan=None, region=None, income=None)
    assert validator.validate([row]).records == [row]


def test_numbers_outside_the_training_range_are_accepted(validator):
    validator.validate([mixed_instance(age=-1e9, income=3e38)])


@pytest.mark.parametrize("value", [1e39, -1e300, 3.5e38])
def test_numbers_beyond_float32_are_a_400_naming_the_field(validator, value):
    with pytest.raises(ApiError) as caught:
        validator.validate([mixed_instance(), mixed_instance(income=value)])
    assert caught.value.status == 400
    assert caught.value.detail[0]["loc"] == ["instances", 1, "income"]
    assert "float32" in caught.value.detail[0]["msg"]


def test_unseen_category_is_accepted_and_counted(validator):
    rows = [mixed_instance(plan="enterprise"), mixed_instance(plan="gold", region="mars")]
    checked = validator.validate(rows)
    assert checked.records == rows
    assert checked.unseen == {"plan": 2, "region": 1}


def test_unseen_category_is_rejected_when_strict(mixed_bundle):
    strict = InstanceValidator(mixed_bundle.schema, max_rows=5, strict_categories=True)
    error = rejected(strict, [mixed_instance(), mixed_instance(plan="enterprise")])
    assert error.status == 400 and error.reason == "unseen_category"
    assert error.detail[0]["loc"] == ["instances", 1, "plan"]
    assert strict.validate([mixed_instance()]).unseen == {}


def test_default_model_schema_is_all_numeric(default_bundle, default_rows):
    validator = InstanceValidator(default_bundle.schema, max_rows=1000)
    assert validator.validate(default_rows[:3]).records == default_rows[:3]
    bad = dict(default_rows[0], **{"mean radius": "big"})
    error = rejected(validator, [bad])
    assert error.detail[0]["loc"] == ["instances", 0, "mean radius"]


# -- feedback ------------------------------------------------------------------------------


def test_feedback_labels_must_be_classes_of_the_model():
    classes = (0, 1)
    assert feedback_labels([{"prediction_id": "a", "label": 1}], CLASSIFIER, classes, 10) == [
        ("a", 1)
    ]
    for label in ("1", 1.0, True, 2, None, [1]):
        with pytest.raises(ApiError) as info:
            feedback_labels([{"prediction_id": "a", "label": label}], CLASSIFIER, classes, 10)
        assert info.value.status == 400, label
        assert info.value.detail[0]["loc"] == ["labels", 0, "label"]
    assert feedback_labels([{"prediction_id": "a", "label": "yes"}], CLASSIFIER, ("no", "yes"), 10)


@pytest.mark.parametrize(
    ("labels", "status", "loc"),
    [
        ([], 400, ["labels"]),
        ([{"prediction_id": "a", "label": 1}] * 11, 413, ["labels"]),
        ([{"label": 1}], 400, ["labels", 0, "prediction_id"]),
        ([{"prediction_id": 5, "label": 1}], 400, ["labels", 0, "prediction_id"]),
        ([{"prediction_id": "a"}], 400, ["labels", 0, "label"]),
        ([{"prediction_id": "a", "label": 1, "x": 1}], 400, ["labels", 0, "x"]),
        (["a"], 400, ["labels", 0]),
    ],
)
def test_feedback_shape_errors(labels, status, loc):
    with pytest.raises(ApiError) as info:
        feedback_labels(labels, CLASSIFIER, (0, 1), 10)
    assert info.value.status == status
    assert info.value.detail[0]["loc"] == loc


def test_unseen_values_past_the_windows_budget_are_folded_into_one_token(mixed_bundle):
    from service.validation import OTHER_CATEGORY, InputLimits

    limits = InputLimits(max_category_chars=200, max_unseen=2, window_rows=1000)
    v = InstanceValidator(mixed_bundle.schema, max_rows=10, limits=limits)
    rows = [mixed_instance(region=f"r{i}") for i in range(5)]
    checked = v.validate(rows)
    assert [r["region"] for r in checked.records] == ["r0", "r1", *[OTHER_CATEGORY] * 3]
    assert checked.folded == {"region": 3}
    assert [r["region"] for r in rows] == [f"r{i}" for i in range(5)]  # as sent


def test_a_category_longer_than_the_limit_is_a_400(mixed_bundle):
    from service.validation import InputLimits

    limits = InputLimits(max_category_chars=20, max_unseen=50, window_rows=1000)
    v = InstanceValidator(mixed_bundle.schema, max_rows=10, limits=limits)
    with pytest.raises(ApiError) as caught:
        v.validate([mixed_instance(region="x" * 21)])
    assert caught.value.status == 400
    assert caught.value.detail[0]["loc"] == ["instances", 0, "region"]


def test_valid_instances_also_come_by_feature_and_as_numbers(mixed_bundle):
    from service.validation import OTHER_CATEGORY, InputLimits
    from vigil.schema import record_columns

    limits = InputLimits(max_category_chars=200, max_unseen=1, window_rows=1000)
    v = InstanceValidator(mixed_bundle.schema, max_rows=10, limits=limits)
    rows = [
        mixed_instance(),
        # Keys in another order, an integer, missing values, unseen categories.
        {"region": None, "plan": "gold", "income": 7, "age": None},
        mixed_instance(region="mars"),
        mixed_instance(region="venus", age=-3e38),
    ]
    checked = v.validate(rows)
    assert checked.unseen == {"plan": 1, "region": 2} and checked.folded == {"region": 1}
    assert checked.records[3]["region"] == OTHER_CATEGORY and rows[3]["region"] == "venus"
    assert checked.columns == record_columns(checked.records)
    assert checked.columns["income"][1] == 7 and type(checked.columns["income"][1]) is int
    expected = [[35.0, math.nan, 35.0, -3e38], [25000.0, 7.0, 25000.0, 25000.0]]
    assert checked.numbers.dtype == "float64"
    assert np.array_equal(checked.numbers, expected, equal_nan=True)


@pytest.mark.parametrize("seed", range(5))
def test_any_mix_of_problems_is_reported_row_by_row(mixed_bundle, seed):
    """One bad value anywhere among valid rows: the same problems, in the same order, as a
    validator that checks every row (``_check_rows``) reports."""
    rng = np.random.default_rng(seed)
    v = InstanceValidator(mixed_bundle.schema, max_rows=50)
    bad_values = {"age": ["x", True, math.nan, 1e39, 10**400, [1]], "plan": [3, None, {"a": 1}]}
    for _ in range(20):
        rows = [mixed_instance(age=float(a)) for a in rng.normal(40, 10, 30)]
        name = str(rng.choice(list(bad_values)))
        values = bad_values[name]
        where = int(rng.integers(30))
        rows[where] = mixed_instance(**{name: values[int(rng.integers(len(values)))]})
        try:
            checked = v.validate(rows)
        except ApiError as exc:
            with pytest.raises(ApiError) as info:
                v._check_rows(rows, "instances")
            assert exc.detail == info.value.detail and exc.reason == info.value.reason
        else:
            assert rows[where]["plan"] is None  # the one valid "bad" value
            assert checked.columns["plan"][where] is None


def test_feedback_labels_of_a_regressor_are_finite_numbers():
    pairs = feedback_labels(
        [{"prediction_id": "a", "label": 151.5}, {"prediction_id": "b", "label": 3}],
        REGRESSOR,
        (),
        10,
    )
    assert pairs == [("a", 151.5), ("b", 3.0)]
    for label in ("1", True, None, [1], float("nan"), float("inf")):
        with pytest.raises(ApiError) as info:
            feedback_labels([{"prediction_id": "a", "label": label}], REGRESSOR, (), 10)
        assert info.value.status == 400, label
        assert info.value.detail[0]["loc"] == ["labels", 0, "label"]
        assert "finite number" in info.value.detail[0]["msg"]
