"""The task module: everything that differs between a classifier and a regressor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.tasks import (
    CLASSIFIER,
    QUALITY_METRICS,
    REGRESSOR,
    BadLabel,
    get_task,
    infer_task,
    regression_metrics,
    task_for,
)
from vigil.tasks.classification import _by_class


@pytest.mark.parametrize("classes", [["no", "yes"], ["a", "b", "c"], ["only"]])
def test_probabilities_by_class(classes):
    proba = np.random.default_rng(0).random((5, len(classes)))
    expected = [{c: float(p) for c, p in zip(classes, row, strict=True)} for row in proba]
    assert _by_class(classes, proba) == expected
    with pytest.raises(ValueError):
        _by_class(classes, proba[:, :-1])


@pytest.mark.parametrize(
    ("labels", "task"),
    [
        (pd.Series([0, 1, 1, 0] * 10), "classification"),
        (pd.Series(["a", "b", "c"] * 10), "classification"),
        (pd.Series([True, False] * 10), "classification"),
        (pd.Series([0.0, 1.0, 2.0] * 10), "classification"),  # integral floats from a CSV
        (pd.Series(np.linspace(0, 1, 40)), "regression"),
        (pd.Series(range(100)), "regression"),  # too many distinct integers for classes
    ],
)
def test_auto_task_from_the_target(labels, task):
    assert infer_task(labels) == task


def test_saved_models_without_a_task_are_classifiers():
    assert task_for({}) is CLASSIFIER
    assert task_for({"task": "regression"}) is REGRESSOR
    with pytest.raises(ValueError, match="unknown task"):
        get_task("ranking")


def test_regression_metrics_match_scikit_learn():
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    rng = np.random.default_rng(1)
    truth = rng.normal(100, 20, 500)
    predicted = truth + rng.normal(3, 5, 500)
    m = regression_metrics(truth, predicted)
    assert m["mae"] == pytest.approx(mean_absolute_error(truth, predicted), abs=1e-6)
    assert m["rmse"] == pytest.approx(mean_squared_error(truth, predicted) ** 0.5, abs=1e-6)
    assert m["r2"] == pytest.approx(r2_score(truth, predicted), abs=1e-6)
    assert m["mean_error"] == pytest.approx(3, abs=0.5)  # over-predicts by 3
    assert regression_metrics(np.array([5.0]), np.array([4.0]))["r2"] is None


def test_each_task_says_which_direction_is_better():
    assert set(QUALITY_METRICS) == set(CLASSIFIER.metrics) | set(REGRESSOR.metrics)
    for task in (CLASSIFIER, REGRESSOR):
        assert set(task.higher_is_better) == set(task.metrics)
    assert REGRESSOR.worse({"rmse": 2.0}, {"rmse": 1.0}) == "held-out rmse 2.0000 > 1.0000"
    assert REGRESSOR.worse({"rmse": 1.0}, {"rmse": 1.0}) is None
    assert CLASSIFIER.worse({"accuracy": 0.9, "f1": 0.8}, {"accuracy": 0.9, "f1": 0.85})
    assert CLASSIFIER.worse({"accuracy": 0.95, "f1": 0.9}, {"accuracy": 0.9, "f1": 0.85}) is None


def test_gates_beat_the_naive_predictor():
    y_train, y_test = pd.Series([1.0, 2.0, 3.0, 4.0]), pd.Series([1.0, 4.0])
    naive = REGRESSOR.naive(y_train, y_test)
    assert naive["rmse"] == pytest.approx(1.5)
    assert REGRESSOR.gate({"r2": 0.5, "rmse": 1.0}, naive, 0.1) is None
    assert "below the gate" in REGRESSOR.gate({"r2": 0.05, "rmse": 1.0}, naive, 0.1)
    assert "training mean" in REGRESSOR.gate({"r2": 0.5, "rmse": 1.5}, naive, 0.1)
    naive = CLASSIFIER.naive(pd.Series([0, 0, 1]), pd.Series([0, 1, 0, 0]))
    assert naive == {"accuracy": 0.75}
    assert "majority class" in CLASSIFIER.gate({"accuracy": 0.75}, naive, 0.6)


@pytest.mark.parametrize("bad", ["1", None, True, float("nan"), float("inf"), [1]])
def test_a_regressor_takes_finite_numbers_only(bad):
    assert REGRESSOR.check_label(3, ()) == 3.0
    assert REGRESSOR.check_label(1e39, ()) == 1e39  # a label is stored as float64
    with pytest.raises(BadLabel):
        REGRESSOR.check_label(bad, ())


@pytest.mark.parametrize("bad", ["1", 1.0, True, 2, None])
def test_a_classifier_takes_its_classes_exactly(bad):
    assert CLASSIFIER.check_label(1, (0, 1)) == 1
    with pytest.raises(BadLabel, match="not a class"):
        CLASSIFIER.check_label(bad, (0, 1))


def test_outputs_and_answers_by_task():
    proba = np.array([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2]])
    out = CLASSIFIER.outputs(proba, ["a", "b", "c"])
    assert out.predictions == ["b", "a"]
    answer = CLASSIFIER.answer(out, slice(0, 2), ["a", "b", "c"])
    assert answer["probabilities"][0] == {"a": 0.2, "b": 0.5, "c": 0.3}
    out = REGRESSOR.outputs(np.array([151.34567891, -2.0]), ())
    assert REGRESSOR.answer(out, slice(0, 2), ()) == {"predictions": [151.345679, -2.0]}
    assert REGRESSOR.log_outputs(out, ()) == ([151.34567891, -2.0], {})


def test_regressor_buckets_follow_its_reference_predictions():
    values = np.random.default_rng(2).normal(150, 50, 2000)
    bounds = REGRESSOR.prediction_buckets(values)
    assert 10 <= len(bounds) <= 19 and bounds == sorted(bounds)
    share = np.searchsorted(bounds, values) / len(values)
    assert share.max() <= 1
    assert CLASSIFIER.prediction_buckets(values) == []
    assert REGRESSOR.prediction_buckets([]) == []
