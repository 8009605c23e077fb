"""The model pipeline and how it is scored."""

from __future__ import annotations

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from vigil.schema import FeatureSchema
from vigil.task import classification_metrics

MISSING_AS_EMPTY = "missing_as_empty"


def build_pipeline(schema: FeatureSchema, *, seed: int, n_estimators: int) -> Pipeline:
    transformers = []
    if schema.numeric:
        transformers.append(("num", SimpleImputer(strategy="median"), schema.numeric))
    if schema.categorical:
        transformers.append(
            (
                "cat",
                Pipeline(
                    [
                        # Missing (NaN) and "" are the same missing value: ONNX string
                        # tensors have no NaN, so the compiled model receives "" (see
                        # training.onnx_export, which drops this step).
                        (MISSING_AS_EMPTY, SimpleImputer(strategy="constant", fill_value="")),
                        ("impute", SimpleImputer(missing_values="", strategy="most_frequent")),
                        # Unseen categories at serving time become all-zero rows, not errors.
                        ("encode", OneHotEncoder(handle_unknown="ignore")),
                    ]
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
    """Held-out quality, as ``vigil.task`` computes it for live data too."""
    proba = pipeline.predict_proba(features)
    return score_proba(proba, proba.argmax(axis=1), pipeline.classes_, labels)


def score_proba(proba, top, classes, labels: pd.Series) -> dict[str, float | None]:
    """Quality of given probabilities (and predicted class indices ``top``): the metrics of
    whichever runtime serves the model."""
    import numpy as np

    classes = np.asarray(classes)
    return classification_metrics(labels.to_numpy(), classes[top], proba, classes)
