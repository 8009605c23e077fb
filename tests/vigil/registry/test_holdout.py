"""training.holdout: the holdout stored with a model is the rows it was scored on, exactly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from vigil.registry.holdout import MAX_ROWS, from_contract, to_contract


def test_the_stored_holdout_is_exactly_the_rows_and_labels():
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True).frame  # scaled: floats of 16-17 significant digits
    features = data.drop(columns="target")
    features["group"] = ["a", None, "b"] * (len(features) // 3) + ["a"] * (len(features) % 3)
    features.loc[3, "bmi"] = np.nan
    contract = {"holdout": json.loads(json.dumps(to_contract(features, data["target"])))}
    rows, labels = from_contract(contract)
    pd.testing.assert_frame_equal(
        rows, features.reset_index(drop=True), check_dtype=False, check_exact=True
    )
    assert labels.tolist() == data["target"].tolist()


def test_a_large_holdout_is_sampled_with_its_labels():
    features = pd.DataFrame({"x": np.arange(MAX_ROWS + 500, dtype=float)})
    labels = pd.Series(np.arange(MAX_ROWS + 500) * 10)
    rows, stored = from_contract({"holdout": to_contract(features, labels, seed=1)})
    assert len(rows) == MAX_ROWS
    assert (stored.to_numpy() == rows["x"].to_numpy() * 10).all()
