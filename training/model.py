"""The model pipeline and how it is scored."""

from __future__ import annotations

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from vigil.schema import FeatureSchema
from vigil.scoring import classification_metrics


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


def score(pipeline: Pipeline, features: pd.DataFrame, labels: pd.Series) -> dict[str, float | None]:
    """Held-out quality, as ``vigil.scoring`` computes it for live data too."""
    proba = pipeline.predict_proba(features)
    predicted = pipeline.classes_[proba.argmax(axis=1)]
    return classification_metrics(labels.to_numpy(), predicted, proba, pipeline.classes_)
