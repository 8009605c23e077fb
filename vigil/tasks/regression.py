"""A regressor's task: numbers, error metrics (MAE, RMSE, R², mean error), the mean as the
naive predictor, a Kolmogorov-Smirnov test for prediction drift."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vigil.tasks.base import REGRESSION, BadLabel, Outputs, Task
from vigil.text import shortened


class Regression(Task):
    name = REGRESSION
    quality_estimator = "dle_shift"
    metrics = ("mae", "rmse", "r2", "mean_error")
    higher_is_better = {"mae": False, "rmse": False, "r2": True, "mean_error": False}
    compared = ("rmse",)
    quality_metric = "rmse"
    prediction_drift_method = "ks"

    def classes(self, labels):
        return ()

    def raw(self, model, frame):
        return model.predict(frame)

    def outputs(self, raw, classes=()):
        values = np.asarray(raw, dtype=np.float64).reshape(-1)
        return Outputs(values.tolist())

    def answer(self, outputs, rows, keys=()):
        return {"predictions": [round(v, 6) for v in outputs.predictions[rows]]}

    def log_outputs(self, outputs, keys=()):
        return outputs.predictions, {}

    def count(self, sink, outputs, keys, version):
        sink.values_predicted(outputs.predictions, version)

    def score(self, truth, outputs, classes=()):
        return regression_metrics(np.asarray(truth, dtype=float), np.asarray(outputs.predictions))

    def score_logged(self, frame, classes=()):
        import pandas as pd

        truth = pd.to_numeric(frame["label"], errors="coerce").to_numpy(dtype=float)
        predicted = pd.to_numeric(frame["prediction"], errors="coerce").to_numpy(dtype=float)
        known = np.isfinite(truth) & np.isfinite(predicted)
        out: dict[str, Any] = {"labeled_rows": int(len(frame))}
        if int((~known).sum()):
            out["unknown_labels"] = int((~known).sum())
        if not known.any():
            return {**{m: None for m in self.metrics}, **out}
        return {**regression_metrics(truth[known], predicted[known]), **out}

    def naive(self, train_labels, test_labels):
        mean = float(train_labels.mean())
        truth = test_labels.to_numpy(dtype=float)
        return {"rmse": round(float(np.sqrt(np.mean((truth - mean) ** 2))), 6)}

    def gate(self, metrics, naive, minimum):
        r2, rmse = metrics["r2"], metrics["rmse"]
        if r2 is None or r2 < minimum:
            return f"R² {r2} is below the gate's {minimum}"
        if rmse >= naive["rmse"]:
            return (
                f"RMSE {rmse:.4f} does not beat always predicting the training mean "
                f"({naive['rmse']:.4f})"
            )
        return None

    def check_label(self, value, classes=()):
        if type(value) not in (int, float) or not math.isfinite(value):
            raise BadLabel(f"{shortened(value)} is not a finite number (the model is a regressor)")
        return float(value)

    def normalise_labels(self, labels):
        import pandas as pd

        return pd.to_numeric(labels, errors="raise").astype("float64")

    def reference_label(self, value, classes=()):
        return float(value)

    def wrong_label(self, label, classes, spread):
        return float(label) + spread

    def label_schema(self, classes=()):
        return {"type": "number", "description": "The true value (a finite number)"}

    def answer_schema(self, classes=()):
        return {
            "predictions": {
                "type": "array",
                "items": {"type": "number"},
                "description": "The predicted value of each instance",
            }
        }

    def prediction_values(self, values):
        import pandas as pd

        return pd.to_numeric(values, errors="coerce").dropna().astype(float)

    def target_problem(self, labels):
        import pandas as pd

        numbers = pd.to_numeric(labels, errors="coerce")
        if numbers.isna().any():
            first = labels[numbers.isna()].iloc[0]
            return f"is not numeric ({shortened(first)}), so it cannot be a regression target"
        if not np.isfinite(numbers.to_numpy(dtype=float)).all():
            return "has infinite values"
        if numbers.nunique() < 2:
            return "is constant; nothing to learn"
        return None

    def estimator(self, kind, *, seed, n_estimators):
        from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
        from sklearn.linear_model import Ridge

        return {
            "random_forest": lambda: RandomForestRegressor(
                n_estimators=n_estimators, random_state=seed, n_jobs=1
            ),
            "hist_gradient_boosting": lambda: HistGradientBoostingRegressor(random_state=seed),
            "linear": lambda: Ridge(),
        }[kind]()

    def disagreement(self, expected, got):
        """Max |Δ| relative to max(1, |expected|): float32 carries ~7 significant digits, so
        the error scales with the value, and near zero an absolute error is what matters."""
        a = np.asarray(expected.predictions, dtype=float)
        b = np.asarray(got.predictions, dtype=float)
        return float((np.abs(a - b) / np.maximum(1.0, np.abs(a))).max(initial=0.0)), 0

    def reference_predictions(self, outputs):
        return [float(p) for p in outputs.predictions]

    agreement_kind = "mean_absolute_difference"

    def agreement(self, production, candidate):
        a, b = np.asarray(production, dtype=float), np.asarray(candidate, dtype=float)
        return float(np.abs(a - b).mean()) if len(a) else math.nan

    def paired_test(self, labels, production, candidate):
        """Wilcoxon's signed-rank test of the paired differences of absolute errors: absolute
        errors are skewed and heavy-tailed, which a paired t-test's level depends on; the
        ranks make one large error count once, not quadratically."""
        from scipy.stats import rankdata, wilcoxon

        truth = np.asarray(labels, dtype=float)
        d = np.abs(np.asarray(production, dtype=float) - truth) - np.abs(
            np.asarray(candidate, dtype=float) - truth
        )
        d = d[np.isfinite(d) & (d != 0)]
        if len(d) == 0:
            return "wilcoxon_signed_rank", 1.0, 0
        p = float(wilcoxon(d).pvalue)
        ranks = rankdata(np.abs(d))
        return "wilcoxon_signed_rank", p, int(np.sign(ranks[d > 0].sum() - ranks[d < 0].sum()))

    def protocol_outputs(self, fields, classes=()):
        return [("predict", "FP64", np.asarray(fields["predictions"], dtype=np.float64), {})]

    def prediction_buckets(self, reference_predictions):
        """At most 19 bounds (20 buckets with +Inf): the reference predictions' 5 % quantiles,
        rounded to 4 significant digits, so each bucket holds about 5 % of normal traffic."""
        values = np.asarray(reference_predictions, dtype=float)
        values = values[np.isfinite(values)]
        if not len(values):
            return []
        quantiles = np.quantile(values, np.linspace(0.05, 0.95, 19))
        return sorted({float(f"{q:.4g}") for q in quantiles})


REGRESSOR = Regression()


def regression_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """MAE, RMSE, R² (None for fewer than two labels or constant labels) and the mean error
    (prediction − label: positive when the model over-predicts). Rounded to six places."""
    error = predicted - truth
    n = len(truth)
    ss_tot = float(((truth - truth.mean()) ** 2).sum()) if n else 0.0
    r2 = None if n < 2 or ss_tot == 0 else 1.0 - float((error**2).sum()) / ss_tot
    metrics = {
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "r2": r2,
        "mean_error": float(error.mean()),
    }
    return {k: None if v is None else round(v, 6) for k, v in metrics.items()}
