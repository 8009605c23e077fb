"""Quality estimated without labels: fitted at training on the holdout, applied per window.

- Classifiers (confidence-based, as NannyML's CBPE): isotonic calibration of each class's
  probability, kept only where it lowers the expected calibration error across stratified
  splits of the holdout. A window's expected accuracy, F1 and ROC AUC follow from its
  calibrated probabilities alone: the expected confusion counts, and the AUC with each row
  counted as positive with its calibrated probability.
- Regressors (direct loss estimation, as NannyML's DLE): two small gradient-boosted models on
  the holdout, from the features and the prediction to the absolute and the squared error;
  a window's MAE and RMSE are the means of their predictions.

Standard errors come from holdout chunks of the window's size (bootstrap draws): the spread of
the realized metric (how far a window's true value strays by sampling alone, NannyML's sampling
error) and the spread of the estimate itself, added in quadrature, so that the band covers both
the truth's noise and the estimate's. The estimate assumes covariate shift only (P(y|x)
unchanged): docs/runbook.md.

One registry keyed by task name (``_ESTIMATORS``) holds what differs between the two tasks.
``fit_quality_estimators`` gives what training stores: JSON for the contract and, for a
regressor, the error models' bytes as an artifact.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from vigil.tasks.base import CLASSIFICATION, REGRESSION, Outputs, Task

CONTRACT_KEY = "quality_estimator"
ARTIFACT = "quality_estimator.joblib"
# Holdout rows kept in the contract for the standard errors (probabilities or errors per row).
MAX_REFERENCE_ROWS = 2000
SE_DRAWS = 200
ECE_BINS = 10
CALIBRATION_SPLITS = 5


# -- metrics shared by the estimate and the realized value ----------------------------------


def _auc(score: np.ndarray, positive: np.ndarray) -> float | None:
    """ROC AUC with row i counted as positive with weight ``positive[i]`` (0/1 labels give the
    usual AUC; calibrated probabilities its expectation). Ties count one half; a row is never
    paired with itself. None when there is no positive or no negative weight."""
    negative = 1.0 - positive
    pairs = positive.sum() * negative.sum() - float((positive * negative).sum())
    if pairs <= 1e-12:
        return None
    groups, inverse = np.unique(score, return_inverse=True)
    neg_in_group = np.bincount(inverse, weights=negative, minlength=len(groups))
    below = np.concatenate(([0.0], np.cumsum(neg_in_group)[:-1]))[inverse]
    ties = neg_in_group[inverse] - negative
    return float((positive * (below + 0.5 * ties)).sum() / pairs)


def _f1(predicted: np.ndarray, positive: np.ndarray) -> float:
    tp = float(positive[predicted].sum())
    fp = float((1.0 - positive[predicted]).sum())
    fn = float(positive[~predicted].sum())
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0


def classifier_metrics(raw: np.ndarray, positive: np.ndarray) -> dict[str, float | None]:
    """Accuracy, F1 (last class for two, macro for more) and ROC AUC (macro one-vs-rest) of
    predictions ``top(raw)`` when row i belongs to class c with weight ``positive[i, c]``:
    one-hot labels give the realized metrics (as ``vigil.tasks.classification_metrics``),
    calibrated probabilities their expectations."""
    from vigil.tasks.base import top_class

    top = top_class(raw)
    k = raw.shape[1]
    accuracy = float(positive[np.arange(len(top)), top].mean())
    classes = [k - 1] if k == 2 else range(k)
    f1 = float(np.mean([_f1(top == c, positive[:, c]) for c in classes]))
    aucs = [_auc(raw[:, c], positive[:, c]) for c in classes]
    auc = None if any(a is None for a in aucs) else float(np.mean(aucs))
    return {"accuracy": accuracy, "f1": f1, "roc_auc": auc}


def regressor_metrics(abs_error: np.ndarray, sq_error: np.ndarray) -> dict[str, float]:
    return {
        "mae": float(np.mean(abs_error)),
        "rmse": float(np.sqrt(max(float(np.mean(sq_error)), 0.0))),
    }


def _spread(draws: list[dict[str, float | None]], metrics: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for m in metrics:
        values = [d[m] for d in draws if d[m] is not None]
        out[m] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return out


# -- classifier: calibration and CBPE --------------------------------------------------------


def expected_calibration_error(proba: np.ndarray, truth: np.ndarray) -> float:
    """Mean |confidence − frequency| over ``ECE_BINS`` equal-width bins, weighted by rows."""
    bins = np.minimum((proba * ECE_BINS).astype(int), ECE_BINS - 1)
    total = 0.0
    for b in np.unique(bins):
        inside = bins == b
        total += inside.sum() * abs(proba[inside].mean() - truth[inside].mean())
    return float(total / len(proba))


def _isotonic(x: np.ndarray, y: np.ndarray):
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x, y)


def _calibration_helps(x: np.ndarray, y: np.ndarray, strata: np.ndarray, seed: int) -> bool:
    """Whether isotonic calibration of ``x`` lowers the ECE on held-out folds of the holdout."""
    from sklearn.model_selection import StratifiedKFold

    smallest = int(np.bincount(strata).min()) if len(strata) else 0
    splits = min(CALIBRATION_SPLITS, smallest)
    if splits < 2:
        return False
    raw_ece, cal_ece = [], []
    folds = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    for fit, test in folds.split(x.reshape(-1, 1), strata):
        iso = _isotonic(x[fit], y[fit])
        raw_ece.append(expected_calibration_error(x[test], y[test]))
        cal_ece.append(expected_calibration_error(iso.predict(x[test]), y[test]))
    return float(np.mean(cal_ece)) < float(np.mean(raw_ece))


class ConfidenceBased:
    """CBPE. State (JSON): per class the isotonic map or None, and the holdout's raw
    probabilities and label indices for the standard errors."""

    name = "cbpe"
    metrics = ("accuracy", "f1", "roc_auc")

    def raw_of(self, outputs: Outputs) -> np.ndarray:
        return outputs.proba

    def truth(self, labels: pd.Series, classes) -> np.ndarray:
        """Each label's index among the probability columns' classes."""
        index = {str(c): i for i, c in enumerate(classes)}
        return np.array([index[str(v)] for v in labels], dtype=int)

    def fit(self, raw, features, truth, seed):
        raw = np.clip(np.asarray(raw, dtype=float), 0.0, 1.0)
        truth = np.asarray(truth, dtype=int)
        k = raw.shape[1]
        calibration: list[dict | None] = [None] * k
        for c in [k - 1] if k == 2 else range(k):
            y = (truth == c).astype(float)
            if _calibration_helps(raw[:, c], y, truth, seed):
                iso = _isotonic(raw[:, c], y)
                calibration[c] = {
                    "x": np.round(iso.X_thresholds_, 6).tolist(),
                    "y": np.round(iso.y_thresholds_, 6).tolist(),
                }
        keep = _subsample(len(truth), seed)
        state = {
            "method": self.name,
            "calibration": calibration,
            "holdout": {"proba": raw[keep].round(6).tolist(), "label": truth[keep].tolist()},
        }
        return state, None

    def rows_from_log(self, frame: pd.DataFrame, features: pd.DataFrame, classes) -> dict:
        """A logged window's probabilities (a ``{class: p}`` per row) in class order."""
        keys = [str(c) for c in classes]
        proba = [[float(p.get(k, 0.0)) for k in keys] for p in frame["probabilities"]]
        return {"proba": np.asarray(proba, dtype=float).reshape(-1, len(keys))}

    def calibrated(self, state: Mapping[str, Any], raw: np.ndarray) -> np.ndarray:
        k = raw.shape[1]
        out = raw.copy()
        for c, cal in enumerate(state["calibration"]):
            if cal is not None:
                out[:, c] = np.interp(raw[:, c], cal["x"], cal["y"])
        if k == 2:
            out[:, 0] = 1.0 - out[:, 1]
            return out
        sums = out.sum(axis=1, keepdims=True)
        return np.where(sums > 0, out / np.where(sums > 0, sums, 1.0), 1.0 / k)

    def estimate(self, state, model, rows: Mapping[str, Any]) -> dict[str, float | None]:
        raw = np.asarray(rows["proba"], dtype=float)
        return classifier_metrics(raw, self.calibrated(state, raw))

    def draws(self, state, n: int, seed: int) -> tuple[list[dict], list[dict]]:
        """Realized and estimated metrics over bootstrap chunks of ``n`` holdout rows."""
        raw = np.asarray(state["holdout"]["proba"], dtype=float)
        labels = np.asarray(state["holdout"]["label"], dtype=int)
        onehot = np.eye(raw.shape[1])[labels]
        calibrated = self.calibrated(state, raw)
        rng = np.random.default_rng(seed)
        realized, estimated = [], []
        for _ in range(SE_DRAWS):
            idx = rng.integers(0, len(labels), n)
            realized.append(classifier_metrics(raw[idx], onehot[idx]))
            estimated.append(classifier_metrics(raw[idx], calibrated[idx]))
        return realized, estimated


# -- regressor: direct loss estimation -------------------------------------------------------


def _error_model(features: pd.DataFrame, seed: int):
    """Categoricals ordinal-encoded (unknown and missing as missing), numbers as they are, and
    a small gradient-boosted regressor: it handles missing values itself."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    categorical = [c for c in features.columns if features[c].dtype == object]
    numeric = [c for c in features.columns if c not in categorical]
    encode = ColumnTransformer(
        [
            (
                "cat",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                ),
                categorical,
            ),
            ("num", "passthrough", numeric),
        ]
    )
    leaf = max(5, min(20, len(features) // 20))
    model = HistGradientBoostingRegressor(
        max_iter=100,
        max_depth=3,
        learning_rate=0.05,
        min_samples_leaf=leaf,
        categorical_features=list(range(len(categorical))),
        random_state=seed,
    )
    return make_pipeline(encode, model)


def _one_thread():
    """OpenMP limited to one thread: the error models are small, and on a shared machine a
    thread per core made fitting 20 times and predicting 4 times slower (measured on 2 busy
    cores: fit 17.5 s against 0.75 s, 1,000-row estimate 0.60 s against 0.16 s)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def _with_prediction(features: pd.DataFrame, predictions) -> pd.DataFrame:
    return features.reset_index(drop=True).assign(
        __prediction__=np.asarray(predictions, dtype=float)
    )


class DirectLoss:
    """DLE. Error models (joblib artifact): absolute and squared error from features and
    prediction. State (JSON): the holdout's realized errors for the standard errors."""

    name = "dle"
    metrics = ("mae", "rmse")

    def raw_of(self, outputs: Outputs) -> np.ndarray:
        return np.asarray(outputs.predictions, dtype=float)

    def truth(self, labels: pd.Series, classes=None) -> np.ndarray:
        return pd.to_numeric(labels, errors="raise").to_numpy(dtype=float)

    def fit(self, predictions, features, truth, seed):
        import joblib

        predictions = np.asarray(predictions, dtype=float).reshape(-1)
        error = predictions - np.asarray(truth, dtype=float)
        x = _with_prediction(features, predictions)
        with _one_thread():
            models = {
                "abs": _error_model(x, seed).fit(x, np.abs(error)),
                "sq": _error_model(x, seed).fit(x, error**2),
            }
        buffer = io.BytesIO()
        joblib.dump(models, buffer)
        keep = _subsample(len(error), seed)
        x = x.iloc[keep]
        with _one_thread():
            predicted = {
                "predicted_abs": np.clip(models["abs"].predict(x), 0.0, None).round(6).tolist(),
                "predicted_sq": np.clip(models["sq"].predict(x), 0.0, None).round(6).tolist(),
            }
        holdout = {"error": error[keep].round(6).tolist(), **predicted}
        return {"method": self.name, "holdout": holdout}, buffer.getvalue()

    def rows_from_log(self, frame: pd.DataFrame, features: pd.DataFrame, classes=()) -> dict:
        predictions = pd.to_numeric(frame["prediction"], errors="coerce").to_numpy(dtype=float)
        return {"features": features, "predictions": predictions}

    def estimate(self, state, model, rows: Mapping[str, Any]) -> dict[str, float]:
        x = _with_prediction(rows["features"], rows["predictions"])
        with _one_thread():
            abs_error = np.clip(model["abs"].predict(x), 0.0, None)
            sq_error = np.clip(model["sq"].predict(x), 0.0, None)
        return regressor_metrics(abs_error, sq_error)

    def draws(self, state, n: int, seed: int) -> tuple[list[dict], list[dict]]:
        """Realized and estimated metrics over bootstrap chunks of ``n`` holdout rows."""
        held = state["holdout"]
        error = np.asarray(held["error"], dtype=float)
        predicted = np.c_[held.get("predicted_abs", []), held.get("predicted_sq", [])]
        rng = np.random.default_rng(seed)
        realized, estimated = [], []
        for _ in range(SE_DRAWS):
            idx = rng.integers(0, len(error), n)
            realized.append(regressor_metrics(np.abs(error[idx]), error[idx] ** 2))
            if len(predicted) == len(error):
                estimated.append(regressor_metrics(predicted[idx, 0], predicted[idx, 1]))
        return realized, estimated


_ESTIMATORS = {CLASSIFICATION: ConfidenceBased(), REGRESSION: DirectLoss()}


def estimator_for(task: Task):
    return _ESTIMATORS[task.name]


def _subsample(n: int, seed: int) -> np.ndarray:
    if n <= MAX_REFERENCE_ROWS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_REFERENCE_ROWS, replace=False))


# -- what training calls ---------------------------------------------------------------------


def fit_quality_estimators(
    task: Task,
    model_or_outputs: Any,
    holdout_features: pd.DataFrame,
    holdout_labels: pd.Series,
    seed: int,
    classes=None,
) -> dict[str, Any]:
    """Fit the task's estimator on the holdout; works for any fitted model.

    ``model_or_outputs``: a fitted scikit-learn model (``predict_proba`` / ``predict`` is
    called on ``holdout_features``), its ``vigil.tasks.Outputs`` on them (as the served runtime
    gave them), or its raw output (probabilities in class order, or predicted numbers).
    ``classes``: the probability columns' classes (default: the model's ``classes_``).
    Returns ``{"contract": {CONTRACT_KEY: …}, "artifacts": {name: bytes}}``: merge the first
    into the contract, the second into the saved artifacts.
    """
    method = estimator_for(task)
    if isinstance(model_or_outputs, Outputs):
        raw = method.raw_of(model_or_outputs)
    elif hasattr(model_or_outputs, "predict"):
        raw = task.raw(model_or_outputs, holdout_features)
        classes = list(getattr(model_or_outputs, "classes_", classes or ()))
    else:
        raw = np.asarray(model_or_outputs)
    state, blob = method.fit(raw, holdout_features, method.truth(holdout_labels, classes), seed)
    state["holdout_rows"] = len(holdout_labels)
    return {"contract": {CONTRACT_KEY: state}, "artifacts": {ARTIFACT: blob} if blob else {}}


# -- what the monitor calls ------------------------------------------------------------------


class QualityEstimator:
    """A saved model's estimator: ``estimate(rows, n)`` gives ``{metric: value, metric_se:
    …}`` for a window; ``None`` for models saved without one."""

    def __init__(self, task: Task, state: Mapping[str, Any], model: Any = None):
        self.task, self.state, self.model = task, state, model
        self.method = estimator_for(task)

    @classmethod
    def of(cls, bundle) -> QualityEstimator | None:
        state = bundle.contract.get(CONTRACT_KEY)
        if not state:
            return None
        model = None
        if ARTIFACT in bundle.artifacts:
            import joblib

            model = joblib.load(io.BytesIO(bundle.artifact_bytes(ARTIFACT)))
        return cls(bundle.task, state, model)

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.method.metrics

    def standard_errors(self, n: int) -> dict[str, float | None]:
        return _standard_errors(self, n)

    def rows_from_log(self, frame: pd.DataFrame, features: pd.DataFrame, classes) -> dict:
        """What ``estimate`` takes, from logged rows (``frame``) and their model input."""
        return self.method.rows_from_log(frame, features, classes)

    def estimate_values(self, rows: Mapping[str, Any]) -> dict[str, float | None]:
        return self.method.estimate(self.state, self.model, rows)

    def estimate(self, rows: Mapping[str, Any], n: int) -> dict[str, float | None]:
        values = self.estimate_values(rows)
        se = self.standard_errors(n)
        out: dict[str, float | None] = {}
        for m in self.metrics:
            out[m] = None if values[m] is None else round(values[m], 6)
            out[m + "_se"] = None if se[m] is None else round(se[m], 6)
        return out


def _standard_errors(estimator: QualityEstimator, n: int) -> dict[str, float | None]:
    cache = estimator.__dict__.setdefault("_se", {})
    if n not in cache:
        if len(cache) > 16:  # window sizes vary little; keep the cache bounded
            cache.clear()
        realized, estimated = estimator.method.draws(estimator.state, max(int(n), 1), seed=n)
        sampling = _spread(realized, estimator.metrics)
        own = _spread(estimated, estimator.metrics) if estimated else {}
        cache[n] = {
            m: None if sampling[m] is None else float(np.hypot(sampling[m], own.get(m) or 0.0))
            for m in estimator.metrics
        }
    return cache[n]


def estimated_drop(
    task: Task,
    metric: str,
    estimate: float | None,
    se: float | None,
    reference: float | None,
    margin: float,
    relative_margin: float,
) -> bool:
    """``ModelQualityDropEstimated``'s condition (the rule computes the same): the estimate
    is worse than the held-out reference by more than the margin (absolute for metrics where
    higher is better, relative for errors) and by more than 3 standard errors."""
    if estimate is None or se is None or reference is None:
        return False
    if task.higher_is_better[metric]:
        return estimate < reference - margin and estimate < reference - 3 * se
    return estimate > reference * (1 + relative_margin) and estimate > reference + 3 * se
