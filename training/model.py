"""The model pipeline and how it is scored."""

from __future__ import annotations

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from vigil.schema import FeatureSchema


def build_pipeline(schema: FeatureSchema, *, seed: int, n_estimators: int) -> Pipeline:
    transformers = []
    if schema.numeric:
        transformers.append(("num", SimpleImputer(strategy="median"), schema.numeric))
    if schema.categorical:
        transformers.append(
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    # Unseen categories at serving time become all-zero rows, not errors.
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                schema.categorical,
            )
        )
    return Pipeline(
        [
            ("prepare", ColumnTransformer(transformers)),
            (
                "classify",
                # n_jobs=1: serving calls are small; a thread pool per call costs more than it saves
                RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1),
            ),
        ]
    )


def score(pipeline: Pipeline, features: pd.DataFrame, labels: pd.Series) -> dict[str, float]:
    """Held-out accuracy, F1 (binary: positive class; multiclass: macro), ROC AUC, log loss."""
    classes = list(pipeline.classes_)
    proba = pipeline.predict_proba(features)
    predicted = pipeline.classes_[proba.argmax(axis=1)]
    truth = labels.to_numpy()
    binary = len(classes) == 2
    metrics = {
        "accuracy": accuracy_score(truth, predicted),
        "f1": f1_score(truth, predicted, pos_label=classes[-1])
        if binary
        else f1_score(truth, predicted, average="macro", labels=classes),
        "log_loss": log_loss(truth, proba, labels=classes),
    }
    try:
        if binary:
            metrics["roc_auc"] = roc_auc_score(truth == classes[-1], proba[:, 1])
        else:
            metrics["roc_auc"] = roc_auc_score(
                truth, proba, multi_class="ovr", average="macro", labels=classes
            )
    except ValueError:  # a class absent from the held-out split
        metrics["roc_auc"] = float("nan")
    return {k: round(float(v), 6) for k, v in metrics.items()}
