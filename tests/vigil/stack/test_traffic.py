"""vigil traffic: realistic rows from the reference, and drift that shifts the right features."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vigil.schema import Feature, FeatureSchema
from vigil.stack.traffic import Drift, drifted_features, make_rows


@pytest.fixture(scope="module")
def production(trained_home_template):
    """The default model's schema and reference sample (trained once per session)."""
    from vigil.registry.store import Registry
    from vigil.settings import get_settings

    bundle = Registry(get_settings(home=trained_home_template)).load_production()
    return bundle.schema, bundle.reference


def _frame(records: list[dict], names: list[str]) -> pd.DataFrame:
    return pd.DataFrame.from_records(records, columns=names).astype(float)


def test_drifted_features():
    numeric = [f"x{i}" for i in range(10)]
    assert drifted_features(numeric, Drift.none) == []
    assert drifted_features(numeric, Drift.one) == ["x0"]
    assert drifted_features(numeric, Drift.one, "x7") == ["x7"]
    most = drifted_features(numeric, Drift.most)
    assert most == numeric[:7]
    assert len(drifted_features([f"x{i}" for i in range(30)], Drift.most)) == 21
    # "most" is more than half, so it reaches the default VIGIL_DRIFT_SHARE of 0.5.
    for n in range(1, 40):
        chosen = drifted_features([f"y{i}" for i in range(n)], Drift.most)
        assert len(chosen) == max(1, math.ceil(0.7 * n)) and len(chosen) / n > 0.5
    assert drifted_features([], Drift.most) == []
    assert drifted_features([], Drift.one) == []


def test_normal_rows_look_like_the_reference(production):
    schema, reference = production
    records = make_rows(reference, schema, 500, seed=3)
    assert len(records) == 500
    assert all(list(r) == schema.names for r in records)
    frame = _frame(records, schema.names)
    assert not frame.isna().any().any()
    assert np.isfinite(frame.to_numpy()).all()
    for name in schema.numeric:
        ref = reference[name]
        # Resampled as they are: the mean moves by far less than a standard deviation.
        assert abs(frame[name].mean() - ref.mean()) < 0.3 * ref.std(), name
    # Same seed, same rows; another seed, other rows.
    assert make_rows(reference, schema, 500, seed=3) == records
    assert make_rows(reference, schema, 500, seed=4) != records


@pytest.mark.parametrize(
    ("drift", "feature", "shift"),
    [
        (Drift.one, None, 3.0),
        (Drift.one, "worst area", 2.5),
        (Drift.most, None, 1.5),
        (Drift.most, None, -2.0),
    ],
)
def test_drift_shifts_exactly_the_chosen_features(production, drift, feature, shift):
    schema, reference = production
    base = _frame(make_rows(reference, schema, 300, seed=7), schema.names)
    moved = _frame(
        make_rows(reference, schema, 300, drift=drift, feature=feature, shift=shift, seed=7),
        schema.names,
    )
    expected = drifted_features(schema.numeric, drift, feature)
    if drift is Drift.one:
        assert expected == [feature or schema.numeric[0]]
    else:
        assert len(expected) / len(schema.numeric) > 0.5
    for name in schema.names:
        delta = (moved[name] - base[name]).to_numpy()
        if name in expected:
            std = float(reference[name].std())
            np.testing.assert_allclose(delta, shift * std, rtol=1e-9, atol=1e-9 * std, err_msg=name)
        else:
            np.testing.assert_array_equal(delta, 0.0, err_msg=name)


def test_missing_values_and_categories_pass_through():
    schema = FeatureSchema(
        features=(
            Feature("age", "numeric", min=18, max=90),
            Feature("income", "numeric", min=0, max=1e6),
            Feature("city", "categorical", categories=("a", "b")),
        ),
        target="y",
        classes=(0, 1),
    )
    reference = pd.DataFrame(
        {
            "age": [20.0, 30.0, 40.0, 50.0],
            "income": [1.0, np.nan, 3.0, 4.0],
            "city": ["a", "b", None, "a"],
            "__label__": [0, 1, 0, 1],
        }
    )
    records = make_rows(reference, schema, 200, drift=Drift.most, shift=10.0, seed=1)
    assert len(records) == 200 and all(list(r) == ["age", "income", "city"] for r in records)
    # Missing values become JSON null (None), never NaN; categories are untouched.
    assert any(r["income"] is None for r in records)
    assert any(r["city"] is None for r in records)
    assert not any(isinstance(v, float) and math.isnan(v) for r in records for v in r.values())
    assert {r["city"] for r in records} <= {"a", "b", None}
    # "most" of two numeric features is both; ages move by 10 reference standard deviations.
    assert drifted_features(schema.numeric, Drift.most) == ["age", "income"]
    assert min(r["age"] for r in records) > 90


def test_labels_come_from_the_reference_and_can_be_made_wrong(production):
    from vigil.stack.traffic import Tally, feedback_labels, make_labeled_rows
    from vigil.tasks import CLASSIFIER, REGRESSOR

    schema, reference = production
    records, labels = make_labeled_rows(reference, schema, 300, seed=3)
    assert len(records) == len(labels) == 300
    tally = Tally(prediction_ids=[f"p{i}" for i in range(300)], answered=list(range(300)))
    right = feedback_labels(tally, labels, CLASSIFIER, schema.classes, share=1.0, wrong=0.0)
    assert [e["label"] for e in right] == [int(v) for v in labels]
    assert {type(e["label"]) for e in right} == {int}  # as /feedback takes the classes
    wrong = feedback_labels(tally, labels, CLASSIFIER, schema.classes, share=1.0, wrong=1.0)
    assert all(a["label"] != b["label"] for a, b in zip(right, wrong, strict=True))
    half = feedback_labels(tally, labels, CLASSIFIER, schema.classes, share=0.5, wrong=0.0)
    assert 100 < len(half) < 200
    values = [str(v) for v in np.linspace(0, 300, 300)]
    moved = feedback_labels(tally, values, REGRESSOR, (), share=1.0, wrong=1.0)
    spread = 3 * float(np.std(np.linspace(0, 300, 300), ddof=1))  # pandas: sample std
    assert moved[0]["label"] == pytest.approx(0 + spread, rel=0.01)


def test_rows_are_sent_as_they_are_and_only_holdout_rows_carry_labels(production):
    from vigil.stack.traffic import make_labeled_rows

    schema, reference = production
    holdout = reference.sample(n=100, random_state=5)  # stands for rows not trained on
    unseen = (holdout[schema.names] * 3).reset_index(drop=True)  # told apart from the reference
    truth = pd.Series([f"h{i}" for i in range(len(unseen))])
    records, labels = make_labeled_rows(reference, schema, 4000, seed=2, holdout=(unseen, truth))
    known = {tuple(r) for r in reference[schema.names].itertuples(index=False)}
    rows = unseen.itertuples(index=False)
    from_holdout = {tuple(r): label for r, label in zip(rows, truth, strict=True)}
    drawn = [tuple(r[name] for name in schema.names) for r in records]
    # Every row is a reference or a holdout row, unchanged; only holdout rows carry a label,
    # their own.
    assert all(row in known or row in from_holdout for row in drawn)
    assert all(
        label == from_holdout[row] if row in from_holdout else label is None
        for row, label in zip(drawn, labels, strict=True)
    )
    share = sum(label is not None for label in labels) / len(labels)
    expected = len(unseen) / (len(unseen) + len(reference))
    assert abs(share - expected) < 0.03, (share, expected)
    # Without a holdout, the reference's labels (live figures are then optimistic).
    _, labels = make_labeled_rows(reference, schema, 100, seed=2)
    assert all(label is not None for label in labels)
