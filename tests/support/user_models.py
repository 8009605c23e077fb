"""Models trained the way a user would, outside Vigil, for ``training.register`` and the
end-to-end tests: a HistGradientBoostingClassifier behind a ColumnTransformer with a
categorical column (saved with skops), a bare Ridge regressor (saved with joblib), and models
that must be refused (one that raises, one whose class lives in a module of the user's)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

PLANS = ("basic", "pro", "team")


@dataclass
class UserModel:
    model: object
    reference: pd.DataFrame  # features and target
    holdout: pd.DataFrame
    target: str

    def split(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        return frame.drop(columns=[self.target]), frame[self.target]

    def write_data(self, directory: Path) -> tuple[Path, Path]:
        """The reference and holdout as CSV files, as a user would hand them over."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = directory / "reference.csv", directory / "holdout.csv"
        self.reference.to_csv(paths[0], index=False)
        self.holdout.to_csv(paths[1], index=False)
        return paths


def churn_frame(rows: int, seed: int) -> pd.DataFrame:
    """Two numbers and a plan; churn is likelier on short tenure, high spend, the basic plan.
    Whole months and cents, as such data comes: ONNX runs trees in float32, and a float64
    value within float32 rounding of a split (full-precision random numbers) can take the
    other branch, which the agreement check would (rightly) refuse."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 61, rows).astype(float)
    spend = rng.normal(50, 15, rows).round(2)
    plan = rng.choice(PLANS, size=rows, p=[0.5, 0.3, 0.2])
    score = (
        -0.06 * tenure + 0.04 * (spend - 50) + 1.2 * (plan == "basic") + rng.normal(0, 0.5, rows)
    )
    return pd.DataFrame(
        {"tenure": tenure, "spend": spend, "plan": plan, "churned": (score > -0.8).astype(int)}
    )


def hgb_classifier(seed: int = 0) -> UserModel:
    """HistGradientBoostingClassifier behind a ColumnTransformer (one-hot plan, numbers as
    they are), fitted on a DataFrame."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    train = churn_frame(1500, seed)
    model = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        (
                            "plan",
                            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                            ["plan"],
                        ),
                        ("numbers", "passthrough", ["tenure", "spend"]),
                    ]
                ),
            ),
            ("model", HistGradientBoostingClassifier(max_iter=60, random_state=seed)),
        ]
    ).fit(train.drop(columns="churned"), train["churned"])
    return UserModel(model, train.iloc[:800], churn_frame(400, seed + 1), "churned")


def diabetes_frame() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"})


def ridge_regressor() -> UserModel:
    """A bare Ridge fitted on a DataFrame of the diabetes features (no pipeline)."""
    from sklearn.linear_model import Ridge

    frame = diabetes_frame()
    train, holdout = frame.iloc[:350], frame.iloc[350:]
    model = Ridge(alpha=0.1).fit(train.drop(columns="progression"), train["progression"])
    return UserModel(model, train, holdout, "progression")


def save_skops(model, path: Path) -> Path:
    import skops.io

    skops.io.dump(model, path)
    return path


def save_joblib(model, path: Path) -> Path:
    import joblib

    joblib.dump(model, path)
    return path


class RaisingClassifier(ClassifierMixin, BaseEstimator):
    """Fitted, but fails on every call: registration must refuse it."""

    def fit(self, x, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, x):
        raise ValueError("this model is broken on purpose")

    def predict_proba(self, x):
        raise ValueError("this model is broken on purpose")


CUSTOM_MODULE = "vigil_user_transformers"
CUSTOM_SOURCE = textwrap.dedent(
    """
    from sklearn.base import BaseEstimator, TransformerMixin


    class Doubler(TransformerMixin, BaseEstimator):
        def fit(self, x, y=None):
            return self

        def transform(self, x):
            return x * 2
    """
)


def custom_transformer_model(directory: Path) -> tuple[UserModel, Path]:
    """A pipeline with the user's own transformer, from a module written under ``directory``
    (on ``sys.path`` only while it is built): ``(model, that directory)``. Loading it where
    the module cannot be imported must fail naming ``vigil_user_transformers``."""
    import importlib
    import sys

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    package = directory / "user_code"
    package.mkdir(parents=True, exist_ok=True)
    (package / f"{CUSTOM_MODULE}.py").write_text(CUSTOM_SOURCE)
    sys.path.insert(0, str(package))
    try:
        module = importlib.import_module(CUSTOM_MODULE)
        frame = churn_frame(600, 3).drop(columns="plan")
        model = Pipeline(
            [("double", module.Doubler()), ("model", LogisticRegression(max_iter=500))]
        ).fit(frame.drop(columns="churned"), frame["churned"])
    finally:
        sys.path.remove(str(package))
    return UserModel(model, frame.iloc[:400], frame.iloc[400:], "churned"), package
