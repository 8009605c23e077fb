"""The quality estimators on generated data where the truth is known."""

from __future__ import annotations

import io

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.metrics import roc_auc_score

from tests.monitoring.quality_generators import classification_frame, regression_frame
from tests.vigil.estimate.conftest import FEATURES, pipeline
from vigil.estimate import (
    ARTIFACT,
    CONTRACT_KEY,
    QualityEstimator,
    classifier_metrics,
    estimated_drop,
    expected_calibration_error,
    fit_quality_estimators,
    regressor_metrics,
)
from vigil.tasks import CLASSIFIER, REGRESSOR, classification_metrics


def test_realized_metrics_match_the_task_scoring_with_ties_and_three_classes():
    rng = np.random.default_rng(0)
    for k in (2, 3):
        raw = rng.dirichlet(np.ones(k), 500).round(1)  # rounded: many ties
        raw = raw / raw.sum(axis=1, keepdims=True)
        truth = rng.integers(0, k, 500)
        mine = classifier_metrics(raw, np.eye(k)[truth])
        theirs = classification_metrics(truth, raw.argmax(axis=1), raw, list(range(k)))
        for m in ("accuracy", "f1", "roc_auc"):
            assert mine[m] == pytest.approx(theirs[m], abs=1e-6), (k, m)
    score = rng.random(300).round(1)
    labels = rng.integers(0, 2, 300)
    expected = classifier_metrics(np.c_[1 - score, score], np.eye(2)[labels])["roc_auc"]
    assert expected == pytest.approx(roc_auc_score(labels, score))


def test_calibrated_probabilities_give_unbiased_expected_metrics():
    # Perfectly calibrated scores: expectations must match the realized average.
    rng = np.random.default_rng(1)
    p = rng.beta(2, 2, (200, 1000))
    y = rng.random(p.shape) < p
    estimated, realized = [], []
    for row, labels in zip(p, y, strict=True):
        raw = np.c_[1 - row, row]
        estimated.append(classifier_metrics(raw, raw)["accuracy"])
        realized.append(classifier_metrics(raw, np.eye(2)[labels.astype(int)])["accuracy"])
    assert abs(np.mean(estimated) - np.mean(realized)) < 0.003


def test_isotonic_calibration_is_kept_when_it_lowers_the_error():
    rng = np.random.default_rng(2)
    true_p = rng.random(3000)
    y = (rng.random(3000) < true_p).astype(int)
    holdout = pd.DataFrame({"x": true_p})
    skewed = true_p**3  # badly calibrated: calibration must be kept and help
    fitted = fit_quality_estimators(
        CLASSIFIER, np.c_[1 - skewed, skewed], holdout, y, 0, [0, 1], method="cbpe"
    )
    state = fitted["contract"][CONTRACT_KEY]
    assert state["calibration"][1] is not None and fitted["artifacts"] == {}
    estimator = QualityEstimator(CLASSIFIER, state)
    calibrated = estimator.method.calibrated(state, np.c_[1 - skewed, skewed])[:, 1]
    assert expected_calibration_error(calibrated, y) < expected_calibration_error(skewed, y) / 3
    # One example of a class: no stratified split to judge calibration by, so none.
    few = np.r_[np.zeros(50, int), 1]
    none = fit_quality_estimators(
        CLASSIFIER, np.c_[1 - few, few] * 0.9, holdout[:51], few, 0, [0, 1]
    )
    assert none["contract"][CONTRACT_KEY]["calibration"] == [None, None]


@pytest.fixture(scope="module")
def classifier():
    train, holdout = classification_frame(4000, 1), classification_frame(2000, 2)
    model = pipeline(RandomForestClassifier(100, min_samples_leaf=5, random_state=0, n_jobs=1))
    model.fit(train[FEATURES], train["target"])
    fitted = fit_quality_estimators(CLASSIFIER, model, holdout[FEATURES], holdout["target"], seed=0)
    return model, QualityEstimator(CLASSIFIER, fitted["contract"][CONTRACT_KEY])


@pytest.mark.parametrize("case", ["none", "covariate"])
def test_classifier_accuracy_estimate_tracks_realized_within_its_errors(classifier, case):
    model, estimator = classifier
    errors, covered = [], []
    for seed in range(20):
        window = classification_frame(1000, 100 + seed, case)
        raw = model.predict_proba(window[FEATURES])
        estimate = estimator.estimate({"proba": raw}, len(window))
        realized = classifier_metrics(raw, np.eye(2)[window["target"].to_numpy()])
        errors.append(estimate["accuracy"] - realized["accuracy"])
        covered.append(abs(errors[-1]) <= 3 * estimate["accuracy_se"])
    assert np.mean(np.abs(errors)) < 0.02
    assert np.mean(covered) >= 0.9


def test_classifier_estimate_falls_where_the_model_is_worse(classifier):
    model, estimator = classifier
    reference = estimator.estimate(
        {"proba": model.predict_proba(classification_frame(1000, 7)[FEATURES])}, 1000
    )
    window = classification_frame(1000, 8, "worse")
    estimate = estimator.estimate({"proba": model.predict_proba(window[FEATURES])}, 1000)
    assert estimate["accuracy"] < reference["accuracy"] - 0.05
    assert estimated_drop(
        CLASSIFIER, "accuracy", estimate["accuracy"], estimate["accuracy_se"],
        reference["accuracy"], margin=0.05, relative_margin=0.2,
    )  # fmt: skip


def test_regressor_estimate_tracks_error_and_its_growth():
    train, holdout = regression_frame(4000, 1), regression_frame(2000, 2)
    model = pipeline(RandomForestRegressor(60, min_samples_leaf=5, random_state=0, n_jobs=1))
    model.fit(train[FEATURES], train["target"])
    fitted = fit_quality_estimators(REGRESSOR, model, holdout[FEATURES], holdout["target"], 0)
    errors_model = joblib.load(io.BytesIO(fitted["artifacts"][ARTIFACT]))
    estimator = QualityEstimator(REGRESSOR, fitted["contract"][CONTRACT_KEY], errors_model)
    found = {}
    for case in ("none", "worse"):
        window = regression_frame(1000, 50, case)
        predictions = model.predict(window[FEATURES])
        error = predictions - window["target"].to_numpy()
        estimate = estimator.estimate(
            {"features": window[FEATURES], "predictions": predictions}, len(window)
        )
        realized = regressor_metrics(np.abs(error), error**2)
        assert abs(estimate["mae"] - realized["mae"]) < 0.15 * realized["mae"], case
        found[case] = estimate
    assert found["worse"]["mae"] > 1.4 * found["none"]["mae"]
    assert estimated_drop(
        REGRESSOR, "mae", found["worse"]["mae"], found["worse"]["mae_se"],
        found["none"]["mae"], margin=0.05, relative_margin=0.2,
    )  # fmt: skip


def test_estimated_drop_minds_the_direction_and_the_standard_error():
    assert estimated_drop(CLASSIFIER, "accuracy", 0.80, 0.01, 0.90, 0.05, 0.2)
    assert not estimated_drop(CLASSIFIER, "accuracy", 0.80, 0.05, 0.90, 0.05, 0.2)  # 3 SE
    assert not estimated_drop(CLASSIFIER, "accuracy", 0.87, 0.001, 0.90, 0.05, 0.2)  # margin
    assert not estimated_drop(REGRESSOR, "rmse", 8.0, 0.1, 10.0, 0.05, 0.2)  # lower is better
    assert estimated_drop(REGRESSOR, "rmse", 13.0, 0.1, 10.0, 0.05, 0.2)
    assert not estimated_drop(REGRESSOR, "rmse", 11.0, 0.1, 10.0, 0.05, 0.2)  # within 20 %
    assert not estimated_drop(CLASSIFIER, "roc_auc", None, None, 0.9, 0.05, 0.2)
