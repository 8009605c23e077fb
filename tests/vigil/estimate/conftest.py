"""What the estimator tests share: the generated frames' model input, the model around it and
a fitted estimator loaded as the monitor loads it."""

from __future__ import annotations

import io

import joblib
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from vigil.estimate import ARTIFACT, CONTRACT_KEY, QualityEstimator

FEATURES = ["x1", "x2", "x3", "x4", "group"]


def pipeline(estimator):
    """``estimator`` behind a one-hot encoding of the generated frames' one categorical."""
    encode = ColumnTransformer(
        [("group", OneHotEncoder(handle_unknown="ignore"), ["group"])], remainder="passthrough"
    )
    return make_pipeline(encode, estimator)


def loaded(task, fitted) -> QualityEstimator:
    """``fit_quality_estimators``' output as the monitor loads it (state and artifact)."""
    blob = fitted["artifacts"].get(ARTIFACT)
    model = joblib.load(io.BytesIO(blob)) if blob else None
    return QualityEstimator(task, fitted["contract"][CONTRACT_KEY], model)
