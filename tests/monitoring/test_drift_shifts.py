"""Known shifts are flagged, on the feature shifted and no other, through the whole check:
inputs logged with InferenceLog.write, read back as the production model's window.

Windows are 1,000 rows resampled from all of scikit-learn's breast-cancer data (the model's
reference is only 455 of those rows) or drawn fresh from the mixed-type generator.
"""

from __future__ import annotations

import numpy as np
import pytest

from monitoring.check import Checker
from tests.monitoring.generators import (
    breast_cancer_rows,
    breast_cancer_sd,
    fill_log,
    mixed_frame,
)
from vigil.log.inference_log import InferenceLog
from vigil.registry.store import Registry
from vigil.settings import get_settings


def _check(settings, log, **kw):
    return Checker(settings, report=False, log=log).check(**kw).payload


def test_half_sd_mean_shift_in_one_feature_is_flagged_alone(production):
    settings, log, bundle = production
    window = breast_cancer_rows(1000, seed=1)
    window["mean texture"] += 0.5 * breast_cancer_sd("mean texture")
    fill_log(log, bundle, window)
    out = _check(settings, log)
    assert out["drifted_features"] == ["mean texture"]
    f = out["features"]["mean texture"]
    assert (f["method"], f["score_kind"], f["drifted"]) == ("ks", "p_value", True)
    assert f["score"] < f["threshold"] == pytest.approx(settings.drift_alpha / 30)
    assert out["drift_share"] == round(1 / 30, 4) and out["drift_detected"] is False
    assert out["window_rows"] == 1000 and out["reference_rows"] == 455
    print(f"\n[shift] mean texture +0.5 SD: p = {f['score']:.3g}")


def test_scale_change_is_flagged(production):
    settings, log, bundle = production
    window = breast_cancer_rows(1000, seed=2)
    col = window["worst smoothness"]
    window["worst smoothness"] = col.mean() + (col - col.mean()) * 1.6
    fill_log(log, bundle, window)
    out = _check(settings, log)
    assert out["drifted_features"] == ["worst smoothness"]
    score = out["features"]["worst smoothness"]["score"]
    print(f"\n[shift] worst smoothness x1.6 spread: p = {score:.3g}")


def test_stuck_constant_value_is_flagged(production):
    settings, log, bundle = production
    window = breast_cancer_rows(1000, seed=3)
    window["mean symmetry"] = float(window["mean symmetry"].median())
    fill_log(log, bundle, window)
    out = _check(settings, log)
    assert out["drifted_features"] == ["mean symmetry"]
    assert out["features"]["mean symmetry"]["missing_share"] == 0.0
    print(f"\n[shift] mean symmetry stuck: p = {out['features']['mean symmetry']['score']:.3g}")


def test_most_features_shifted_is_dataset_drift(production):
    settings, log, bundle = production
    window = breast_cancer_rows(1000, seed=4)
    shifted = list(window.columns[:20])
    for name in shifted:
        window[name] += 0.5 * breast_cancer_sd(name)
    fill_log(log, bundle, window)
    out = _check(settings, log)
    assert set(shifted) <= set(out["drifted_features"])
    assert out["drift_share"] >= 0.5 and out["drift_detected"] is True


def test_resampled_window_without_shift_is_quiet(production):
    settings, log, bundle = production
    fill_log(log, bundle, breast_cancer_rows(1000, seed=5))
    out = _check(settings, log)
    assert out["drifted_features"] == [] and out["drift_detected"] is False
    assert out["prediction_drift"]["drifted"] is False


@pytest.fixture(scope="module")
def mixed_home(mixed_model_home):
    return mixed_model_home(600)


def test_category_only_in_current_data_is_flagged(mixed_home, tmp_path):
    settings = get_settings(home=mixed_home)
    log = InferenceLog.from_settings(settings)
    log.create_schema()
    bundle = Registry(settings).load_production()
    window = mixed_frame(1000, seed=99).drop(columns="target")
    rng = np.random.default_rng(0)
    window.loc[rng.random(1000) < 0.15, "region"] = "atlantis"  # never seen in training
    fill_log(log, bundle, window)
    out = _check(settings, log)
    assert out["drifted_features"] == ["region"]
    region = out["features"]["region"]
    assert (region["method"], region["score_kind"]) == ("chisquare", "p_value")
    print(f"\n[shift] region gains an unseen category (15%): p = {region['score']:.3g}")
    log.close()
