"""Candidate models for tests: saved beside production in a registry, with a known truth."""

from __future__ import annotations

import numpy as np


class Exploding:
    """A "model" that raises on every row (importable by the service under test)."""

    def __init__(self, classes):
        self.classes_ = np.asarray(classes)

    def predict_proba(self, frame):
        raise RuntimeError("this candidate fails on every row")

    def predict(self, frame):
        raise RuntimeError("this candidate fails on every row")


def save_exploding(registry, bundle) -> str:
    """An exploding candidate with production's contract (no ONNX: scikit-learn serves it)."""
    contract = {k: v for k, v in bundle.contract.items() if k not in ("onnx", "tag")}
    return registry.save(Exploding(bundle.schema.classes), contract, bundle.reference)


def save_other(registry, bundle, seed: int = 3) -> str:
    """Another working model of production's data: a small, shallow forest fitted on its
    reference sample, so that its answers differ from production's now and then."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    from vigil.registry.store import LABEL_COLUMN

    reference = bundle.reference
    labels = bundle.task.normalise_labels(reference[LABEL_COLUMN])
    forest = RandomForestClassifier(5, random_state=seed, max_depth=2)
    pipeline = make_pipeline(SimpleImputer(), forest).fit(reference[bundle.schema.names], labels)
    contract = {k: v for k, v in bundle.contract.items() if k not in ("onnx", "tag")}
    return registry.save(pipeline, contract, reference)


def save_regressor(registry, *, depth: int | None, seed: int = 0) -> str:
    """A regressor of scikit-learn's diabetes data (a forest; ``depth`` None: a full one),
    saved through the registry with a regression contract, as ``training.train`` would."""
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    from vigil.registry.store import LABEL_COLUMN, PREDICTION_COLUMN
    from vigil.schema import FeatureSchema
    from vigil.tasks import REGRESSOR, regression_metrics

    data = load_diabetes(as_frame=True)
    features, target = data.data, data.target
    train, test = features.index[:350], features.index[350:]
    model = RandomForestRegressor(20, max_depth=depth, random_state=seed)
    model.fit(features.loc[train], target.loc[train])
    schema = FeatureSchema.infer(features, target, "target", task="regression")
    predicted = model.predict(features.loc[test])
    reference = features.loc[train].copy()
    reference[LABEL_COLUMN] = target.loc[train].to_numpy()
    reference[PREDICTION_COLUMN] = model.predict(features.loc[train])
    contract = {
        "schema": schema.to_dict(),
        "task": "regression",
        "metrics": regression_metrics(target.loc[test].to_numpy(), predicted),
        "prediction_buckets": REGRESSOR.prediction_buckets(reference[PREDICTION_COLUMN]),
    }
    return registry.save(model, contract, reference.reset_index(drop=True))


def diabetes_rows() -> tuple[list[dict], list[float]]:
    """The diabetes rows the regressors above did not train on, and their labels."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    rows = data.data.iloc[350:]
    return rows.to_dict(orient="records"), data.target.iloc[350:].tolist()
