"""Estimated quality and data quality against the truth (issue 20's evaluation).

From a known generator (``tests/monitoring/quality_generators.py``), for a classifier and a
regressor: a model trained on 4,000 rows, its estimators fitted on a 2,000-row holdout, then
windows of 1,000 rows per case: (a) nothing changes; (b) the inputs shift inside the training
support but P(y|x) does not; (b') a shift like (b) that pushes one feature beyond the training
range, where the estimate is known to be blind; (c) the inputs shift into a region where the
model is worse. Per case and metric: the estimate's mean absolute error against the realized
value, the share of windows whose realized value lies within ±3 SE of the estimate, and the
decisions of ModelQualityDropEstimated's condition (per window; the rule also asks it to hold
for 5 minutes). Then DataQualityDegraded's tests on clean windows and on windows with 10 %
nulls injected in one column.

    python -m bench --only estimate
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

WINDOWS = 30
WINDOW_ROWS = 1000
DQ_WINDOWS = 200
MARGIN, RELATIVE_MARGIN = 0.05, 0.2  # VIGIL_QUALITY_ALERT_MARGIN, VIGIL_QUALITY_RMSE_MARGIN
ALPHA = 0.01  # VIGIL_DRIFT_ALPHA
FEATURES = ["x1", "x2", "x3", "x4", "group"]
CASE_NAMES = {
    "none": "(a) nothing changes",
    "covariate": "(b) covariate shift",
    "beyond": "(b') shift beyond training range",
    "worse": "(c) shift to where model is worse",
}


def _pipeline(estimator):
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    encode = ColumnTransformer(
        [("group", OneHotEncoder(handle_unknown="ignore"), ["group"])], remainder="passthrough"
    )
    return make_pipeline(encode, estimator)


def _setup(task_name: str):
    """(task, model, estimator, frame generator, realized-metrics function, reference)."""
    import io

    import joblib
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    from tests.monitoring.quality_generators import classification_frame, regression_frame
    from vigil.estimate import (
        ARTIFACT,
        CONTRACT_KEY,
        QualityEstimator,
        classifier_metrics,
        fit_quality_estimators,
        regressor_metrics,
    )
    from vigil.tasks import CLASSIFIER, REGRESSOR

    if task_name == "classification":
        task, generate = CLASSIFIER, classification_frame
        model = _pipeline(RandomForestClassifier(100, min_samples_leaf=5, random_state=0))

        def rows_and_truth(model, window):
            raw = model.predict_proba(window[FEATURES])
            realized = classifier_metrics(raw, np.eye(2)[window["target"].to_numpy()])
            return {"proba": raw}, realized

    else:
        task, generate = REGRESSOR, regression_frame
        model = _pipeline(RandomForestRegressor(100, min_samples_leaf=5, random_state=0))

        def rows_and_truth(model, window):
            predictions = model.predict(window[FEATURES])
            error = predictions - window["target"].to_numpy()
            realized = regressor_metrics(np.abs(error), error**2)
            return {"features": window[FEATURES], "predictions": predictions}, realized

    train, holdout = generate(4000, 1), generate(2000, 2)
    model.fit(train[FEATURES], train["target"])
    started = time.perf_counter()
    fitted = fit_quality_estimators(task, model, holdout[FEATURES], holdout["target"], seed=0)
    fit_seconds = time.perf_counter() - started
    blob = fitted["artifacts"].get(ARTIFACT)
    estimator = QualityEstimator(
        task, fitted["contract"][CONTRACT_KEY], joblib.load(io.BytesIO(blob)) if blob else None
    )
    _, reference = rows_and_truth(model, holdout)  # the held-out figures training records
    return task, model, estimator, generate, rows_and_truth, reference, fit_seconds


def _evaluate_task(task_name: str) -> dict:
    from vigil.estimate import estimated_drop

    task, model, estimator, generate, rows_and_truth, reference, fit_s = _setup(task_name)
    out = {"reference": {m: round(reference[m], 4) for m in estimator.metrics},
           "fit_seconds": round(fit_s, 2), "cases": {}}  # fmt: skip
    for c, case in enumerate(CASE_NAMES):
        per_metric = {
            m: {"err": [], "cov": [], "fired": [], "real_drop": []} for m in estimator.metrics
        }
        timings, any_fired, any_drop = [], [], []
        for w in range(WINDOWS):
            window = generate(WINDOW_ROWS, 1000 * (c + 1) + w, case)
            rows, realized = rows_and_truth(model, window)
            started = time.perf_counter()
            estimate = estimator.estimate(rows, WINDOW_ROWS)
            timings.append(time.perf_counter() - started)
            for m, acc in per_metric.items():
                value, se, truth = estimate[m], estimate[m + "_se"], realized[m]
                acc["err"].append(value - truth)
                acc["cov"].append(abs(value - truth) <= 3 * se)
                acc["fired"].append(
                    estimated_drop(task, m, value, se, reference[m], MARGIN, RELATIVE_MARGIN)
                )
                acc["real_drop"].append(
                    estimated_drop(task, m, truth, 0.0, reference[m], MARGIN, RELATIVE_MARGIN)
                )
            any_fired.append(any(acc["fired"][-1] for acc in per_metric.values()))
            any_drop.append(any(acc["real_drop"][-1] for acc in per_metric.values()))
        out["cases"][case] = {m: _summary(acc) for m, acc in per_metric.items()}
        fired, dropped = np.asarray(any_fired), np.asarray(any_drop)
        out["cases"][case]["any_metric"] = {
            "windows_fired": int(fired.sum()),
            "windows_realized_drop": int(dropped.sum()),
            "fired_when_realized_drop": int((fired & dropped).sum()),
        }
        out["cases"][case]["estimate_ms_median"] = round(1000 * float(np.median(timings)), 1)
    return out


def _summary(acc: dict) -> dict:
    err = np.asarray(acc["err"])
    fired, real = np.asarray(acc["fired"]), np.asarray(acc["real_drop"])
    return {
        "windows": len(err),
        "mae_vs_realized": round(float(np.mean(np.abs(err))), 4),
        "bias": round(float(np.mean(err)), 4),
        "within_3se": round(float(np.mean(acc["cov"])), 3),
        "alert_fired": int(fired.sum()),
        "realized_drop_past_margin": int(real.sum()),
        "fired_when_realized_drop": int((fired & real).sum()),
        "fired_without_realized_drop": int((fired & ~real).sum()),
    }


def _data_quality() -> dict:
    from monitoring.data_quality import assess, flagged_features
    from tests.monitoring.quality_generators import classification_frame, inject_nulls
    from vigil.schema import FeatureSchema, to_frame

    train = classification_frame(5000, 1)
    schema = FeatureSchema.infer(train[FEATURES], train["target"], "target")
    reference = to_frame(schema, train[FEATURES])
    false_alarms = caught = wrong_column = 0
    started = time.perf_counter()
    for w in range(DQ_WINDOWS):
        clean = to_frame(schema, classification_frame(WINDOW_ROWS, 50_000 + w)[FEATURES])
        false_alarms += bool(flagged_features(assess(schema, reference, clean, alpha=ALPHA)))
        broken = inject_nulls(classification_frame(WINDOW_ROWS, 60_000 + w)[FEATURES], "x3", 0.1, w)
        found = flagged_features(assess(schema, reference, to_frame(schema, broken), alpha=ALPHA))
        caught += "x3" in found
        wrong_column += bool(set(found) - {"x3"})
    per_window = (time.perf_counter() - started) / (2 * DQ_WINDOWS)
    return {
        "windows": DQ_WINDOWS,
        "alpha": ALPHA,
        "clean_false_alarm_rate": round(false_alarms / DQ_WINDOWS, 4),
        "nulls_10pct_caught_rate": round(caught / DQ_WINDOWS, 4),
        "other_columns_flagged": wrong_column,
        "ms_per_window": round(1000 * per_window, 1),
    }


def run(out: Path) -> dict:
    from bench import estimate_real

    real = estimate_real.run()
    results = {
        "real_data": real,
        "windows_per_case": WINDOWS,
        "window_rows": WINDOW_ROWS,
        "margin": MARGIN,
        "relative_margin": RELATIVE_MARGIN,
        "classification": _evaluate_task("classification"),
        "regression": _evaluate_task("regression"),
        "data_quality": _data_quality(),
    }
    _print(results)
    (Path(out) / "estimate.json").write_text(json.dumps(results, indent=2))
    return results


def _print(results: dict) -> None:
    head = (f"{'task':<15}{'case':<40}{'metric':<9}{'ref':>7}{'MAE':>8}{'bias':>8}{'±3SE':>7}"
            f"{'fired':>7}{'drop>m':>8}{'hit':>5}{'false':>7}")  # fmt: skip
    print(head)
    for task in ("classification", "regression"):
        r = results[task]
        for case, label in CASE_NAMES.items():
            for metric, s in r["cases"][case].items():
                if metric not in r["reference"]:
                    continue
                print(
                    f"{task:<15}{label:<40}{metric:<9}{r['reference'][metric]:>7.3f}"
                    f"{s['mae_vs_realized']:>8.4f}{s['bias']:>8.4f}{s['within_3se']:>7.2f}"
                    f"{s['alert_fired']:>7}{s['realized_drop_past_margin']:>8}"
                    f"{s['fired_when_realized_drop']:>5}{s['fired_without_realized_drop']:>7}"
                )
        alerts = ", ".join(
            f"{label[:4].strip()} {r['cases'][case]['any_metric']['windows_fired']}/{WINDOWS}"
            for case, label in CASE_NAMES.items()
        )
        print(f"{task}: windows where any metric's alert condition held: {alerts}")
    dq = results["data_quality"]
    print(
        f"data quality ({dq['windows']} windows each, alpha {dq['alpha']}): clean windows "
        f"flagged {dq['clean_false_alarm_rate']:.1%}; 10 % nulls in one column caught "
        f"{dq['nulls_10pct_caught_rate']:.1%}; other columns flagged {dq['other_columns_flagged']}"
    )


if __name__ == "__main__":
    run(Path("bench-results"))
