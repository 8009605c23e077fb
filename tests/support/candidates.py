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

    from vigil.registry import LABEL_COLUMN

    reference = bundle.reference
    labels = bundle.task.normalise_labels(reference[LABEL_COLUMN])
    forest = RandomForestClassifier(5, random_state=seed, max_depth=2)
    pipeline = make_pipeline(SimpleImputer(), forest).fit(reference[bundle.schema.names], labels)
    contract = {k: v for k, v in bundle.contract.items() if k not in ("onnx", "tag")}
    return registry.save(pipeline, contract, reference)
