"""Homes holding one promoted model of each kind the protocol must serve: a multiclass
classifier (wine, 3 classes) and a regressor (diabetes). The binary classifier (breast cancer)
and the mixed-feature classifier (text classes, categories) come from the shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def wine_home_template(tmp_path_factory) -> Path:
    from sklearn.datasets import load_wine

    from training.data import check
    from training.train import train
    from vigil.settings import get_settings

    data = load_wine(as_frame=True)
    frame = data.frame.rename(columns={"target": "cultivar"})
    home = tmp_path_factory.mktemp("wine-home")
    dataset = check(frame, "cultivar", "0" * 64, "wine")
    outcome = train(get_settings(home=home), dataset, n_estimators=20, promote=True)
    assert outcome.promoted, outcome
    return home


@pytest.fixture(scope="session")
def diabetes_home_template(tmp_path_factory) -> Path:
    """A promoted regressor saved the way training saves a model (scikit-learn only: no ONNX
    artifact), with contract task ``regression``."""
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    from vigil.registry import LABEL_COLUMN, PREDICTION_COLUMN, Registry
    from vigil.schema import FeatureSchema, to_frame
    from vigil.settings import get_settings
    from vigil.task import REGRESSOR

    data = load_diabetes(as_frame=True)
    features, labels = data.data, data.target.astype("float64")
    schema = FeatureSchema.infer(features, labels, "progression", task="regression")
    x = to_frame(schema, features)
    model = RandomForestRegressor(n_estimators=20, random_state=0).fit(x, labels)
    predicted = model.predict(x)
    metrics = REGRESSOR.score(labels.to_numpy(), REGRESSOR.outputs(predicted), ())
    reference = x.copy()
    reference[LABEL_COLUMN] = labels.astype(str)
    reference[PREDICTION_COLUMN] = pd.Series(predicted).astype(str).to_numpy()
    contract = {
        "schema": schema.to_dict(),
        "task": "regression",
        "metrics": metrics,
        "params": {"estimator": "RandomForestRegressor", "n_estimators": 20},
        "prediction_buckets": REGRESSOR.prediction_buckets(predicted.tolist()),
        "inference": {"runtime": "sklearn", "reason": "test regressor: no ONNX export"},
        "lineage": {},
        "dataset_sha256": "0" * 64,
    }
    home = tmp_path_factory.mktemp("diabetes-home")
    registry = Registry(get_settings(home=home))
    tag = registry.save(model, contract, reference.reset_index(drop=True))
    registry.promote(tag)
    return home
