"""monitoring.detect: fixed tests per column, Bonferroni across columns, awkward columns.

The false-alarm tests draw fresh windows from the generator that made the training data and
count, on the same windows, what Evidently's default per-column tests would have flagged.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from monitoring.detect import (
    CHISQUARE,
    KS,
    chisquare_pvalue,
    detect,
    feature_drift,
)
from tests.monitoring.generators import mixed_frame
from vigil.schema import Feature, FeatureSchema, to_frame

WINDOWS = 25


def _schema(**kinds: str) -> FeatureSchema:
    return FeatureSchema(
        features=tuple(Feature(name, kind) for name, kind in kinds.items()),
        target="y",
        classes=(0, 1),
    )


def test_bonferroni_threshold_and_share():
    rng = np.random.default_rng(0)
    names = {f"x{i}": "numeric" for i in range(30)}
    ref = pd.DataFrame({n: rng.normal(size=500) for n in names})
    cur = pd.DataFrame({n: rng.normal(size=1000) for n in names})
    cur["x0"] += 0.5
    d = detect(_schema(**names), ref, cur, alpha=0.01, share=0.5)
    assert d.drifted_features == ["x0"]
    assert all(f.threshold == pytest.approx(0.01 / 30) for f in d.features.values())
    assert all(f.method == KS and f.score_kind == "p_value" for f in d.features.values())
    assert d.drift_share == round(1 / 30, 4)
    assert d.drift_detected is False
    cur[[f"x{i}" for i in range(15)]] += 0.5
    d = detect(_schema(**names), ref, cur, alpha=0.01, share=0.5)
    assert d.drift_share == 0.5 and d.drift_detected is True


def test_method_is_fixed_whatever_the_reference_size():
    rng = np.random.default_rng(1)
    schema = _schema(a="numeric", b="categorical")
    for n_ref in (200, 5000):
        ref = pd.DataFrame({"a": rng.normal(size=n_ref), "b": rng.choice(["u", "v"], n_ref)})
        cur = pd.DataFrame({"a": rng.normal(size=800), "b": rng.choice(["u", "v"], 800)})
        d = detect(schema, ref, cur, alpha=0.01, share=0.5)
        assert (d.features["a"].method, d.features["b"].method) == (KS, CHISQUARE)
        assert {f.score_kind for f in d.features.values()} == {"p_value"}


def test_category_only_in_current_data_is_a_valid_cell():
    ref = pd.Series(["a"] * 300 + ["b"] * 200)
    cur = pd.Series(["a"] * 400 + ["b"] * 300 + ["new"] * 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero
        p = chisquare_pvalue(ref, cur)
    assert 0 <= p < 1e-6
    # A handful of unseen values is no evidence of drift.
    cur = pd.Series(["a"] * 600 + ["b"] * 398 + ["new"] * 2)
    assert chisquare_pvalue(ref, cur) > 0.01


def test_sparse_categories_do_not_raise_false_alarms():
    # A rare category seen twice in a small window against a large reference: plain
    # chi-square would put 2 observations over an expected 0.04 and reject.
    ref = pd.Series(["a"] * 2500 + ["b"] * 2495 + ["rare"] * 5)
    cur = pd.Series(["a"] * 49 + ["b"] * 49 + ["rare"] * 2)
    assert chisquare_pvalue(ref, cur) > 0.01


def test_constant_columns():
    same = feature_drift("numeric", pd.Series([3.0] * 200), pd.Series([3.0] * 500), 0.001)
    assert same.score == pytest.approx(1.0) and not same.drifted
    stuck = feature_drift(
        "numeric",
        pd.Series(np.random.default_rng(2).normal(size=200)),
        pd.Series([0.1] * 500),
        0.001,
    )
    assert stuck.drifted and stuck.score < 1e-20
    one_category = feature_drift("categorical", pd.Series(["x"] * 50), pd.Series(["x"] * 90), 0.1)
    assert one_category.score == 1.0 and not one_category.drifted


def test_all_missing_column_is_reported_not_tested():
    ref = pd.Series(np.arange(100.0))
    gone = feature_drift("numeric", ref, pd.Series([np.nan] * 300), 0.001)
    assert (gone.score, gone.drifted, gone.missing_share) == (None, True, 1.0)
    assert "missing in the window" in gone.note
    both = feature_drift("numeric", pd.Series([np.nan] * 10), pd.Series([np.nan] * 30), 0.001)
    assert (both.score, both.drifted) == (None, False)
    partly = feature_drift("numeric", ref, pd.Series([1.0, np.nan, 2.0, np.nan]), 0.001)
    assert partly.missing_share == 0.5 and partly.score is not None


def test_infinities_count_as_missing():
    cur = pd.Series([1.0, np.inf, 2.0, -np.inf] * 50)
    f = feature_drift("numeric", pd.Series(np.arange(1.0, 3.0, 0.01)), cur, 0.001)
    assert f.missing_share == 0.5 and f.score is not None


def test_prediction_drift_at_alpha():
    schema = _schema(a="numeric")
    frame = pd.DataFrame({"a": np.arange(600.0)})
    ref_pred = pd.Series(["0"] * 300 + ["1"] * 300)
    cur_pred = pd.Series([0] * 500 + [1] * 100).astype(str)
    d = detect(
        schema,
        frame,
        frame,
        alpha=0.01,
        share=0.5,
        reference_predictions=ref_pred,
        current_predictions=cur_pred,
    )
    assert d.prediction.method == CHISQUARE and d.prediction.threshold == 0.01
    assert d.prediction.drifted and d.prediction.score < 1e-10


# -- false alarms on windows without drift --------------------------------------------------


@pytest.fixture(scope="module", params=[600, 2000], ids=["ref-480", "ref-1600"])
def mixed_model(request, mixed_model_home):
    """A model trained on generated data: reference of 480 rows, or 1,600 (> 1,000, where
    Evidently's defaults switch numeric columns to a distance)."""
    from vigil.registry.store import Registry
    from vigil.settings import get_settings

    return Registry(get_settings(home=mixed_model_home(request.param))).load_production()


def _evidently_default_flags(schema, reference, window) -> int:
    """How many columns Evidently's default per-column test (method and threshold chosen by
    reference size and column type) flags: what a DataDriftPreset() would show."""
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    flagged = 0
    for f in schema.features:
        ref, cur = reference[f.name].dropna(), window[f.name].dropna()
        kind = ColumnType.Numerical if f.kind == "numeric" else ColumnType.Categorical
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flagged += bool(get_stattest(ref, cur, kind, None)(ref, cur, kind, None).drifted)
    return flagged


def test_no_drift_windows_raise_at_most_one_feature_alarm(mixed_model):
    schema = mixed_model.schema
    reference = to_frame(schema, mixed_model.reference)
    ref_pred = mixed_model.reference["__prediction__"]
    ours_any = ours_dataset = ev_any = ev_dataset = 0
    for i in range(WINDOWS):
        window = mixed_frame(1000, seed=10_000 + i).drop(columns="target")
        current = to_frame(schema, window)
        d = detect(
            schema,
            reference,
            current,
            alpha=0.01,
            share=0.5,
            reference_predictions=ref_pred,
            current_predictions=pd.Series(mixed_model.pipeline.predict(current)).astype(str),
        )
        ours_any += bool(d.drifted_features)
        ours_dataset += d.drift_detected
        flagged = _evidently_default_flags(schema, reference, current)
        ev_any += flagged > 0
        ev_dataset += flagged / len(schema.features) >= 0.5
    print(
        f"\n[false alarms, reference {len(reference)} rows, {WINDOWS} windows of 1000] "
        f"ours: {ours_any} windows flag a feature, {ours_dataset} dataset drift; "
        f"Evidently defaults: {ev_any} windows flag a feature, {ev_dataset} dataset drift"
    )
    assert ours_dataset == 0
    assert ours_any <= 1
