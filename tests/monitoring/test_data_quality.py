"""Data-quality checks: injected faults caught, clean windows left alone at VIGIL_DRIFT_ALPHA."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.data_quality import assess, flagged_features
from tests.monitoring.quality_generators import classification_frame, inject_nulls
from vigil.schema import FeatureSchema, to_frame

FEATURES = ["x1", "x2", "x3", "x4", "group"]


@pytest.fixture(scope="module")
def reference():
    train = classification_frame(3000, 1)
    schema = FeatureSchema.infer(train[FEATURES], train["target"], "target")
    return schema, to_frame(schema, train[FEATURES])


def _window(schema, frame):
    return to_frame(schema, frame[FEATURES])


def test_clean_windows_are_not_flagged(reference):
    schema, ref = reference
    windows = [_window(schema, classification_frame(1000, s)) for s in range(100, 160)]
    alarms = [bool(flagged_features(assess(schema, ref, w, alpha=0.01))) for w in windows]
    assert sum(alarms) <= 1  # expected 0.6 at alpha 0.01


def test_ten_percent_nulls_in_one_column_are_caught(reference):
    schema, ref = reference
    caught = 0
    for s in range(40):
        window = inject_nulls(classification_frame(1000, 200 + s), "x3", 0.1, seed=s)
        found = flagged_features(assess(schema, ref, _window(schema, window), alpha=0.01))
        assert set(found) <= {"x3"}
        caught += found == ["x3"]
    assert caught >= 38


def test_missing_share_is_tested_against_the_reference_own_share():
    # 20 % missing in training: a window with 20 % missing is fine, 35 % is not.
    rng = np.random.default_rng(3)
    train = pd.DataFrame({"a": rng.normal(size=4000)})
    train.loc[rng.random(4000) < 0.2, "a"] = np.nan
    schema = FeatureSchema.infer(train, pd.Series([0, 1] * 2000), "target")
    ref = to_frame(schema, train)
    same = pd.DataFrame({"a": rng.normal(size=1000)})
    same.loc[rng.random(1000) < 0.2, "a"] = np.nan
    assert not assess(schema, ref, to_frame(schema, same), alpha=0.01)["a"].flagged
    more = same.copy()
    more.loc[rng.random(1000) < 0.2, "a"] = np.nan
    result = assess(schema, ref, to_frame(schema, more), alpha=0.01)["a"]
    assert result.flagged and result.flagged_checks == ["missing"]


def test_out_of_range_unseen_and_constant_columns_are_flagged(reference):
    schema, ref = reference
    window = classification_frame(1000, 9)[FEATURES].copy()
    window.loc[:49, "x1"] = 50.0  # outside the training range
    window.loc[:29, "group"] = "never-seen"
    window["x2"] = 0.25  # stopped varying
    result = assess(schema, ref, _window(schema, window), alpha=0.01)
    assert result["x1"].flagged_checks == ["out_of_range"]
    assert result["x1"].out_of_range_share == pytest.approx(0.05)
    assert result["group"].flagged_checks == ["unseen"]
    assert result["group"].unseen_share == pytest.approx(0.03)
    assert result["x2"].flagged_checks == ["constant"]
    assert not result["x3"].flagged and not result["x4"].flagged
    payload = result["x1"].to_dict()
    assert {"missing_share", "out_of_range_share", "unseen_share", "flagged"} <= set(payload)


def test_a_few_values_beyond_the_range_are_expected_and_not_flagged(reference):
    schema, ref = reference
    window = classification_frame(1000, 10)[FEATURES].copy()
    window.loc[:1, "x4"] = 99.0  # two rows: a fresh sample can exceed the training range
    assert not assess(schema, ref, _window(schema, window), alpha=0.01)["x4"].flagged


def test_text_logged_in_a_numeric_column_is_a_type_anomaly(reference):
    schema, ref = reference
    raw = classification_frame(200, 11)[FEATURES].astype(object)
    raw.loc[0, "x1"] = "twelve"
    result = assess(schema, ref, _window(schema, raw), alpha=0.01, raw=raw)
    assert "type" in result["x1"].flagged_checks
