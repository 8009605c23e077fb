"""Each estimator on generated data: where its assumptions hold and where they fail."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from tests.monitoring.quality_generators import classification_frame, regression_frame
from tests.vigil.estimate.conftest import FEATURES, loaded, pipeline
from vigil.estimate import (
    ESTIMATORS,
    Estimator,
    classifier_metrics,
    estimator_for,
    fit_quality_estimators,
    regressor_metrics,
)
from vigil.estimate.band import shift_scales
from vigil.estimate.shift import BEYOND_SHARE, featurizer, importance
from vigil.tasks import CLASSIFIER, REGRESSOR


def test_every_estimator_declares_the_base_and_each_task_names_one():
    assert all(isinstance(e, Estimator) for e in ESTIMATORS.values())
    assert estimator_for(CLASSIFIER).name == CLASSIFIER.quality_estimator
    assert estimator_for(REGRESSOR).name == REGRESSOR.quality_estimator
    with pytest.raises(ValueError, match="unknown quality estimator"):
        fit_quality_estimators(CLASSIFIER, np.zeros((4, 2)), pd.DataFrame(), [0] * 4, 0,
                               [0, 1], method="nope")  # fmt: skip


def test_domain_weights_are_flat_without_shift_and_flag_a_window_beyond_support():
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"a": rng.normal(size=2000), "c": rng.choice(list("xy"), 2000)})
    fitted = featurizer(reference)
    matrix = fitted.encode(reference)
    same = importance(fitted, matrix, reference.sample(1000, random_state=1))
    assert same.vouched and same.effective_rows > 0.9 * len(reference)
    inside = reference.assign(a=rng.normal(0.7, 1.0, size=2000)).sample(1000, random_state=2)
    moved = importance(fitted, matrix, inside)
    assert moved.vouched and moved.effective_rows < same.effective_rows
    assert moved.weights[matrix[:, 0] > 1].mean() > moved.weights[matrix[:, 0] < -1].mean()
    far = reference.assign(a=rng.normal(8.0, 0.5, size=2000)).sample(1000, random_state=3)
    beyond = importance(fitted, matrix, far)
    assert not beyond.vouched and beyond.beyond_share > BEYOND_SHARE
    assert beyond.support()["vouched"] is False


@pytest.fixture(scope="module")
def classifier():
    train, holdout = classification_frame(4000, 1), classification_frame(2000, 2)
    model = pipeline(RandomForestClassifier(60, min_samples_leaf=5, random_state=0, n_jobs=1))
    model.fit(train[FEATURES], train["target"])
    estimators = {
        name: loaded(CLASSIFIER, fit_quality_estimators(
            CLASSIFIER, model, holdout[FEATURES], holdout["target"], 0, method=name))
        for name in ("cbpe", "atc", "doc", "reweighted_cbpe", "reweighted_atc", "atc_shift")
    }  # fmt: skip
    return model, estimators


def _errors(model, estimator, case, seeds=range(8)):
    errors, covered = [], []
    for seed in seeds:
        window = classification_frame(1000, 300 + seed, case)
        raw = model.predict_proba(window[FEATURES])
        found = estimator.estimate({"proba": raw, "features": window[FEATURES]}, len(window))
        realized = classifier_metrics(raw, np.eye(2)[window["target"].to_numpy()])
        errors.append(found["accuracy"] - realized["accuracy"])
        covered.append(abs(errors[-1]) <= 3 * found["accuracy_se"])
    return float(np.mean(np.abs(errors))), float(np.mean(covered))


@pytest.mark.parametrize(
    "name", ["cbpe", "atc", "doc", "reweighted_cbpe", "reweighted_atc", "atc_shift"]
)
def test_each_classifier_estimator_is_close_where_its_assumptions_hold(classifier, name):
    model, estimators = classifier
    for case in ("none", "covariate"):
        mae, _ = _errors(model, estimators[name], case)
        assert mae < 0.03, (name, case, mae)


def test_atc_threshold_gives_back_the_holdout_accuracy(classifier):
    model, estimators = classifier
    holdout = classification_frame(2000, 2)
    raw = model.predict_proba(holdout[FEATURES])
    realized = classifier_metrics(raw, np.eye(2)[holdout["target"].to_numpy()])["accuracy"]
    found = estimators["atc"].estimate({"proba": raw}, len(holdout))["accuracy"]
    assert found == pytest.approx(realized, abs=0.005)


def test_reweighting_corrects_where_the_model_is_worse_and_widens_its_band(classifier):
    """The window moves to where the model is worse (P(y|x) unchanged, inside the support):
    CBPE's calibration, learnt over the whole holdout, is off there; the reweighted holdout
    sees it. The reweighted band is wider than under no shift."""
    model, estimators = classifier
    cbpe, _ = _errors(model, estimators["cbpe"], "worse")
    reweighted, covered = _errors(model, estimators["reweighted_cbpe"], "worse")
    assert reweighted <= cbpe + 0.005 and covered >= 0.75
    window = classification_frame(1000, 99, "worse")
    still = classification_frame(1000, 98)
    est = estimators["reweighted_cbpe"]
    wide = est.estimate({"proba": model.predict_proba(window[FEATURES]),
                         "features": window[FEATURES]}, 1000)  # fmt: skip
    narrow = est.estimate({"proba": model.predict_proba(still[FEATURES]),
                           "features": still[FEATURES]}, 1000)  # fmt: skip
    assert wide["accuracy_se"] > narrow["accuracy_se"]


def test_beyond_the_support_the_estimate_is_not_corrected_and_its_band_takes_in_both(
    classifier,
):
    """x1 pushed far outside the holdout's range: the window is flagged as not vouched for,
    the estimate stays the uncorrected one and its standard error is at least the
    correction it left out."""
    model, estimators = classifier
    window = classification_frame(1000, 77).assign(x1=lambda f: f["x1"] + 40.0)
    rows = {"proba": model.predict_proba(window[FEATURES]), "features": window[FEATURES]}
    values, support = estimators["reweighted_atc"].assess(rows, 1000)
    assert support is not None and support["vouched"] is False
    plain = estimators["atc"].estimate({"proba": rows["proba"]}, 1000)
    assert values["accuracy"] == plain["accuracy"]
    assert values["accuracy_se"] >= plain["accuracy_se"]


def test_without_the_window_features_reweighting_falls_back_to_cbpe(classifier):
    model, estimators = classifier
    window = classification_frame(1000, 5)
    raw = model.predict_proba(window[FEATURES])
    values, support = estimators["reweighted_cbpe"].assess({"proba": raw}, 1000)
    assert support is None
    assert values["accuracy"] == estimators["cbpe"].estimate({"proba": raw}, 1000)["accuracy"]


def test_reweighted_loss_tracks_the_error_where_the_model_is_worse():
    train, holdout = regression_frame(3000, 1), regression_frame(1500, 2)
    model = pipeline(RandomForestRegressor(40, min_samples_leaf=5, random_state=0, n_jobs=1))
    model.fit(train[FEATURES], train["target"])
    fitted = fit_quality_estimators(REGRESSOR, model, holdout[FEATURES], holdout["target"], 0)
    estimator = loaded(REGRESSOR, fitted)
    for case in ("none", "worse"):
        window = regression_frame(1000, 60, case)
        predictions = model.predict(window[FEATURES])
        error = predictions - window["target"].to_numpy()
        realized = regressor_metrics(np.abs(error), error**2)
        found, support = estimator.assess(
            {"features": window[FEATURES], "predictions": predictions}, len(window)
        )
        assert support is not None
        assert abs(found["mae"] - realized["mae"]) <= 3 * found["mae_se"] + 0.05 * realized["mae"]


def test_the_shift_term_is_calibrated_on_the_holdouts_own_tilted_splits():
    """An estimator that is never wrong gets no shift term; one whose error follows the
    window's tilt gets one, larger the more its error moves; noise it already counts is not
    counted again."""
    rng = np.random.default_rng(3)
    encoded = np.c_[rng.normal(size=(600, 2)), rng.integers(0, 2, 600)]

    def refit(error_per_tilt: float, noise: float):
        def fitted(rows):
            return lambda window: {"accuracy": (error_per_tilt * encoded[window, 0].mean(), noise)}

        return fitted

    assert shift_scales(encoded, 2, refit(0.0, 0.0), ("accuracy",), 0) == {"accuracy": 0.0}
    small = shift_scales(encoded, 2, refit(0.05, 0.0), ("accuracy",), 0)["accuracy"]
    large = shift_scales(encoded, 2, refit(0.20, 0.0), ("accuracy",), 0)["accuracy"]
    assert 0 < small < large
    counted = shift_scales(encoded, 2, refit(0.05, 1.0), ("accuracy",), 0)["accuracy"]
    assert counted == 0.0


def test_the_chosen_band_widens_with_the_shift_and_covers_where_the_model_is_worse(classifier):
    model, estimators = classifier
    chosen = estimators["atc_shift"]
    _, covered = _errors(model, chosen, "worse")
    assert covered >= 0.75
    still = classification_frame(1000, 98)
    moved = classification_frame(1000, 99, "worse")
    values = {}
    for name, window in (("still", still), ("moved", moved)):
        rows = {"proba": model.predict_proba(window[FEATURES]), "features": window[FEATURES]}
        values[name], support = chosen.assess(rows, 1000)
        assert support is not None and support["vouched"] is True
    assert values["moved"]["accuracy_se"] > values["still"]["accuracy_se"]
    # Without shift the band stays near the sampling part alone.
    sampling = chosen.standard_errors(1000)["accuracy"]
    assert values["still"]["accuracy_se"] < 1.5 * sampling


def test_the_sampling_part_is_measured_once_and_scales_as_a_mean(classifier):
    _, estimators = classifier
    chosen = estimators["atc_shift"]
    at_1000, at_250 = chosen.standard_errors(1000), chosen.standard_errors(250)
    for m in chosen.metrics:
        assert at_250[m] == pytest.approx(2 * at_1000[m])
