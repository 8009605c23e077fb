"""The model pipeline ``training.train`` fits: shared preparation, then the chosen estimator."""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from vigil.schema import FeatureSchema
from vigil.tasks import CLASSIFIER, Task

MISSING_AS_EMPTY = "missing_as_empty"
ESTIMATORS = ("random_forest", "hist_gradient_boosting", "linear")
DEFAULT_ESTIMATOR = "random_forest"


def build_pipeline(
    schema: FeatureSchema,
    *,
    seed: int,
    n_estimators: int,
    task: Task = CLASSIFIER,
    estimator: str = DEFAULT_ESTIMATOR,
) -> Pipeline:
    """Imputation and one-hot encoding, scaling for ``linear``, then ``task``'s estimator."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; expected one of {ESTIMATORS}")
    # Forests take sparse one-hot columns; gradient boosting and the scaler need dense ones.
    dense = estimator != "random_forest"
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
                        (
                            "encode",
                            OneHotEncoder(handle_unknown="ignore", sparse_output=not dense),
                        ),
                    ]
                ),
                schema.categorical,
            )
        )
    steps = [("prepare", ColumnTransformer(transformers, sparse_threshold=0.0 if dense else 0.3))]
    if estimator == "linear":
        steps.append(("scale", StandardScaler()))
    steps.append(("model", task.estimator(estimator, seed=seed, n_estimators=n_estimators)))
    return Pipeline(steps)


def classes_of(model) -> list:
    """A fitted classifier's classes as plain Python values (none for a regressor)."""
    from vigil.tasks import plain_label

    return [plain_label(c) for c in getattr(model, "classes_", [])]


def score(model, features, labels, task: Task = CLASSIFIER) -> dict[str, float | None]:
    """Held-out quality of a scikit-learn model, as ``vigil.tasks`` computes it live too."""
    classes = classes_of(model)
    return task.score(labels.to_numpy(), task.outputs(task.raw(model, features), classes), classes)
