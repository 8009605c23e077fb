"""Vigil's quality estimators beside NannyML 0.13.1's CBPE and DLE on real data, side by side.

Real data that ships inside packages: NannyML's own bundled files (ACS employment in
Massachusetts, California housing, Titanic) read from its wheel, and statsmodels' ``fair``
survey (held back: no choice in the estimators was made on it). Per data set the default
forest is trained through ``training.train`` (its holdout fits every estimator); a fifth of
the reference period is kept apart for the unshifted windows. Shifted windows: the later
periods the data sets ship (years, months, the Titanic's test passengers) and rows resampled
by one feature (weights growing with it, so the support stays the reference's).

NannyML runs in its own cached virtual environment (it pins what this project does not) as
a subprocess exchanging parquet files: ``~/.cache/vigil-bench`` (``VIGIL_BENCH_CACHE``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

NANNYML = "nannyml==0.13.1"
CLASSIFIER_METHODS = ("cbpe", "atc", "doc", "reweighted_cbpe", "reweighted_atc", "atc_shift")
REGRESSOR_METHODS = ("dle", "reweighted_dle", "dle_shift")
WINDOW_ROWS = 1000
SEED = 7


def cache() -> Path:
    return Path(os.environ.get("VIGIL_BENCH_CACHE", Path.home() / ".cache" / "vigil-bench"))


def _run(cmd: list[str], timeout: float) -> None:
    subprocess.run(cmd, check=True, timeout=timeout, capture_output=True)


def nannyml_wheel() -> zipfile.ZipFile:
    wheels = cache() / "wheel"
    found = sorted(wheels.glob("nannyml-0.13.1-*.whl"))
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", NANNYML, "--no-deps", "-d", str(wheels)]
        _run(pip, timeout=300)
        found = sorted(wheels.glob("nannyml-0.13.1-*.whl"))
    return zipfile.ZipFile(found[0])


def nannyml_python() -> Path:
    """The cached environment's interpreter (created on first use: a few minutes)."""
    venv = cache() / "nannyml-venv"
    python = venv / "bin" / "python"
    if not (venv / ".ready").exists():
        _run([sys.executable, "-m", "venv", str(venv)], timeout=120)
        # statsmodels: nannyml imports it without declaring it; pandas<3: it does not cap it.
        install = [str(python), "-m", "pip", "install", "-q", NANNYML, "statsmodels", "pandas<3",
                   "pyarrow"]  # fmt: skip
        _run(install, timeout=1200)
        (venv / ".ready").touch()
    return python


def _bundled(name: str) -> bytes:
    return nannyml_wheel().read(f"nannyml/datasets/data/{name}")


def _read(name: str) -> pd.DataFrame:
    import io

    data = io.BytesIO(_bundled(name))
    return pd.read_parquet(data) if name.endswith(".pq") else pd.read_csv(data)


@dataclass
class RealSet:
    name: str
    task: str
    target: str
    reference: pd.DataFrame  # the reference period, features and target
    periods: dict[str, pd.DataFrame]  # later periods, features and target
    held_back: bool = False


def employment() -> RealSet:
    ref = _read("employment_MA_reference.pq")
    ana = _read("employment_MA_analysis.pq").merge(_read("employment_MA_analysis_target.pq"))
    features = ["AGEP", "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC",
                "NATIVITY", "DEAR", "DEYE", "DREM", "SEX", "RAC1P"]  # fmt: skip

    def frame(d: pd.DataFrame) -> pd.DataFrame:
        out = d[features].astype(float).copy()
        out["employed"] = d["employed"].astype(int).to_numpy()
        return out

    periods = {f"year {y}": frame(ana[ana["year"] == y]) for y in sorted(ana["year"].unique())}
    return RealSet("employment_MA", "classification", "employed", frame(ref), periods)


def california() -> RealSet:
    ref = _read("california_housing_reference.csv")
    ana = _read("california_housing_analysis.csv").merge(
        _read("california_housing_analysis_gt.csv")
    )
    features = ["MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup",
                "Latitude", "Longitude"]  # fmt: skip
    month = pd.to_datetime(ana["timestamp"]).dt.to_period("Q").astype(str)
    periods = {
        f"quarter {q}": ana[month == q][[*features, "clf_target"]] for q in sorted(set(month))
    }
    columns = [*features, "clf_target"]
    return RealSet("california_housing", "classification", "clf_target", ref[columns], periods)


def titanic() -> RealSet:
    ref = _read("titanic_reference.csv")
    ana = _read("titanic_analysis.csv").merge(_read("titanic_target.csv"))
    # boat and body name survivors and victims: left out, as a model in service would not see them
    features = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
    return RealSet("titanic", "classification", "Survived", ref[[*features, "Survived"]],
                   {"test passengers": ana[[*features, "Survived"]]})  # fmt: skip


def _fair(python: Path, work: Path) -> pd.DataFrame:
    out = work / "fair.parquet"
    script = ("import statsmodels.api as sm; "
              f"sm.datasets.fair.load_pandas().data.to_parquet({str(out)!r})")  # fmt: skip
    _run([str(python), "-c", script], timeout=300)
    return pd.read_parquet(out)


def fair(python: Path, work: Path, task: str) -> RealSet:
    """statsmodels' 1974 Redbook survey (6,366 women): held back. Periods: none ship with it;
    its shifted windows are the resampled ones only."""
    d = _fair(python, work)
    target = "had_affair" if task == "classification" else "affairs"
    if task == "classification":
        d[target] = (d["affairs"] > 0).astype(int)
        d = d.drop(columns="affairs")
    return RealSet(f"fair ({task})", task, target, d.reset_index(drop=True), {}, held_back=True)


def _resampled(frame: pd.DataFrame, column: str, sign: float, rng) -> pd.DataFrame:
    """``WINDOW_ROWS`` rows drawn with weights growing with ``column`` (standardised): a
    covariate shift whose support stays the source's."""
    x = pd.to_numeric(frame[column], errors="coerce").fillna(frame[column].median())
    z = (x - x.mean()) / (x.std() or 1.0)
    p = np.exp(sign * 1.0 * z.to_numpy())
    idx = rng.choice(len(frame), WINDOW_ROWS, replace=True, p=p / p.sum())
    return frame.iloc[idx].reset_index(drop=True)


def windows(data: RealSet, unseen: pd.DataFrame, rng) -> dict[str, tuple[str, pd.DataFrame]]:
    """``{name: (kind, rows)}``: unshifted reference rows the model never saw, the later
    periods (up to ``WINDOW_ROWS`` rows each) and resampled windows of the later periods (or
    of the unseen reference rows when none ship)."""
    out = {"reference rows, unseen": ("unshifted", unseen)}
    for name, rows in data.periods.items():
        take = rows.sample(n=min(len(rows), WINDOW_ROWS), random_state=SEED)
        out[name] = ("shifted", take.reset_index(drop=True))
    pool = pd.concat(data.periods.values()) if data.periods else unseen
    numeric = [c for c in pool.columns if c != data.target and pool[c].nunique() > 2]
    numeric = [c for c in numeric if pd.api.types.is_numeric_dtype(pool[c])]
    for column in numeric[:3]:
        for sign in (1.0, -1.0):
            name = f"resampled {'high' if sign > 0 else 'low'} {column}"
            out[name] = ("shifted", _resampled(pool, column, sign, rng))
    return out


def _train(data: RealSet, home: Path):
    """The default forest through ``training.train``, and its stored bundle."""
    from training.data import check
    from training.train import train
    from vigil.registry import Registry
    from vigil.settings import get_settings

    settings = get_settings(home=home, require_signed_models=False)
    dataset = check(data.reference, data.target, data.name, data.name, data.task)
    outcome = train(settings, dataset, seed=SEED)
    return Registry(settings).load(outcome.model_tag)


NANNYML_SCRIPT = r"""
import json, sys
import pandas as pd
import nannyml as nml
spec = json.loads(sys.argv[1])
ref = pd.read_parquet(spec["reference"])
out = {}
for name, path in spec["windows"].items():
    win = pd.read_parquet(path)
    if spec["task"] == "classification":
        est = nml.CBPE(y_pred_proba="y_pred_proba", y_pred="y_pred", y_true="y_true",
                       problem_type="classification_binary", metrics=["accuracy", "roc_auc"],
                       chunk_number=1)
    else:
        est = nml.DLE(feature_column_names=spec["features"], y_pred="y_pred", y_true="y_true",
                      metrics=["mae", "rmse"], chunk_number=1)
    est.fit(ref)
    res = est.estimate(win).filter(period="analysis").to_df()
    out[name] = {m: {"value": float(res[(m, "value")].iloc[0]),
                     "se": float(res[(m, "sampling_error")].iloc[0])}
                 for m in spec["metrics"]}
print(json.dumps(out))
"""


def _nannyml(python: Path, work: Path, task: str, reference: pd.DataFrame, wins: dict,
             features: list[str], metrics: list[str]) -> dict:  # fmt: skip
    reference.to_parquet(work / "nml_reference.parquet")
    paths = {}
    for i, (name, frame) in enumerate(wins.items()):
        paths[name] = str(work / f"nml_window_{i}.parquet")
        frame.to_parquet(paths[name])
    spec = {"reference": str(work / "nml_reference.parquet"), "windows": paths, "task": task,
            "features": features, "metrics": metrics}  # fmt: skip
    done = subprocess.run([str(python), "-c", NANNYML_SCRIPT, json.dumps(spec)], check=True,
                          timeout=1800, capture_output=True, text=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def _nannyml_frame(task, features: pd.DataFrame, raw, truth) -> pd.DataFrame:
    """What NannyML reads: numeric features, the prediction (and score), the truth."""
    out = features.reset_index(drop=True).copy()
    for c in out.columns:
        if not pd.api.types.is_numeric_dtype(out[c]):
            out[c] = out[c].astype("category").cat.codes
    if task == "classification":
        out["y_pred_proba"] = raw[:, 1]
        out["y_pred"] = raw.argmax(axis=1)
    else:
        out["y_pred"] = raw
    out["y_true"] = np.asarray(truth)
    return out


def evaluate(data: RealSet, python: Path, work: Path) -> dict:
    from vigil.estimate import (
        QualityEstimator,
        classifier_metrics,
        fit_quality_estimators,
        regressor_metrics,
    )
    from vigil.estimate.quality import ARTIFACT, CONTRACT_KEY
    from vigil.schema import to_frame
    from vigil.tasks import get_task

    rng = np.random.default_rng(SEED)
    task = get_task(data.task)
    reference = data.reference.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    cut = int(len(reference) * 0.8)
    unseen = reference.iloc[cut:].reset_index(drop=True)
    data.reference = reference.iloc[:cut].reset_index(drop=True)
    started = time.perf_counter()
    bundle = _train(data, work / data.name.replace(" ", "_"))
    train_s = time.perf_counter() - started
    model, schema = bundle.pipeline, bundle.schema
    from vigil.registry.holdout import from_contract

    hx, hy = from_contract(bundle.contract)
    hx = to_frame(schema, hx)
    classes = list(getattr(model, "classes_", ()))
    methods = CLASSIFIER_METHODS if data.task == "classification" else REGRESSOR_METHODS
    estimators = {}
    for m in methods:
        import io

        import joblib

        fitted = fit_quality_estimators(task, model, hx, hy, SEED, classes=classes, method=m)
        blob = fitted["artifacts"].get(ARTIFACT)
        loaded = joblib.load(io.BytesIO(blob)) if blob else None
        estimators[m] = QualityEstimator(task, fitted["contract"][CONTRACT_KEY], loaded)

    def prepared(frame: pd.DataFrame):
        x = to_frame(schema, frame.drop(columns=data.target))
        raw = task.raw(model, x)
        if data.task == "classification":
            index = {str(c): i for i, c in enumerate(classes)}
            truth = np.array([index[str(v)] for v in frame[data.target]])
            realized = classifier_metrics(raw, np.eye(len(classes))[truth])
            rows = {"proba": raw, "features": x}
        else:
            truth = frame[data.target].to_numpy(dtype=float)
            error = raw - truth
            realized = regressor_metrics(np.abs(error), error**2)
            rows = {"features": x, "predictions": raw}
        return x, raw, truth, realized, rows

    wins = windows(data, unseen, rng)
    metric_names = ["accuracy", "roc_auc"] if data.task == "classification" else ["mae", "rmse"]
    table, nml_frames, timings = {}, {}, {m: [] for m in methods}
    for name, (kind, frame) in wins.items():
        x, raw, truth, realized, rows = prepared(frame)
        entry = {"kind": kind, "rows": len(frame),
                 "realized": {k: realized[k] for k in metric_names}, "methods": {}}  # fmt: skip
        for m, est in estimators.items():
            t0 = time.perf_counter()
            values, support = est.assess(rows, len(frame))
            timings[m].append(time.perf_counter() - t0)
            entry["methods"][m] = {k: {"value": values[k], "se": values[k + "_se"]}
                                   for k in metric_names}  # fmt: skip
            if support is not None:
                entry["support"] = support
        table[name] = entry
        nml_frames[name] = _nannyml_frame(data.task, x, raw, truth)
    hraw = task.raw(model, hx)
    htruth = (np.array([{str(c): i for i, c in enumerate(classes)}[str(v)] for v in hy])
              if data.task == "classification" else hy.to_numpy(dtype=float))  # fmt: skip
    nml_ref = _nannyml_frame(data.task, hx, hraw, htruth)
    feature_names = [c for c in nml_ref.columns if c not in ("y_pred", "y_pred_proba", "y_true")]
    nml = _nannyml(python, work, data.task, nml_ref, nml_frames, feature_names, metric_names)
    for name, entry in table.items():
        entry["methods"]["nannyml"] = nml[name]
    return {"task": data.task, "held_back": data.held_back, "train_seconds": round(train_s, 1),
            "holdout_rows": len(hy), "windows": table,
            "estimate_ms_median": {m: round(1000 * float(np.median(t)), 1)
                                   for m, t in timings.items()},
            "summary": summarise(table, metric_names)}  # fmt: skip


def summarise(table: dict, metric_names: list[str]) -> dict:
    """Per method and metric: MAE and bias over shifted windows, share within 3 SE, mean SE,
    and the error on the unshifted windows."""
    methods = next(iter(table.values()))["methods"].keys()
    out = {}
    for m in methods:
        out[m] = {}
        for k in metric_names:
            shifted = [e for e in table.values() if e["kind"] == "shifted"]
            err = [
                e["methods"][m][k]["value"] - e["realized"][k]
                for e in shifted
                if e["methods"][m][k]["value"] is not None and e["realized"][k] is not None
            ]
            ses = [e["methods"][m][k]["se"] for e in shifted if e["methods"][m][k]["se"]]
            cover = [
                abs(e["methods"][m][k]["value"] - e["realized"][k]) <= 3 * e["methods"][m][k]["se"]
                for e in shifted
                if e["methods"][m][k]["se"] and e["realized"][k] is not None
            ]
            flat = [
                abs(e["methods"][m][k]["value"] - e["realized"][k])
                for e in table.values()
                if e["kind"] == "unshifted" and e["methods"][m][k]["value"] is not None
            ]
            out[m][k] = {
                "mae": round(float(np.mean(np.abs(err))), 4) if err else None,
                "bias": round(float(np.mean(err)), 4) if err else None,
                "within_3se": round(float(np.mean(cover)), 2) if cover else None,
                "mean_se": round(float(np.mean(ses)), 4) if ses else None,
                "unshifted_error": round(float(np.mean(flat)), 4) if flat else None,
            }  # fmt: skip
    if "nannyml" in out:
        for m in methods:
            for k in metric_names:
                mine, theirs = out[m][k], out["nannyml"][k]
                mine["mae_vs_nannyml"] = _ratio(mine["mae"], theirs["mae"])
                mine["se_vs_nannyml"] = _ratio(mine["mean_se"], theirs["mean_se"])
                mine["median_se_vs_nannyml"] = _ratio(
                    *(_median_se(table, name, k) for name in (m, "nannyml"))
                )
    return out


def _median_se(table: dict, method: str, metric: str) -> float | None:
    ses = [e["methods"][method][metric]["se"] for e in table.values() if e["kind"] == "shifted"]
    ses = [v for v in ses if v]
    return float(np.median(ses)) if ses else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def run() -> dict:
    python = nannyml_python()
    results = {}
    with tempfile.TemporaryDirectory(prefix="vigil-estimate-bench-") as tmp:
        work = Path(tmp)
        sets = [employment(), california(), titanic(), fair(python, work, "classification"),
                fair(python, work, "regression")]  # fmt: skip
        for data in sets:
            results[data.name] = evaluate(data, python, work)
            print_set(data.name, results[data.name])
    from bench import estimate_check_cost

    print()
    results["check_cost"] = estimate_check_cost.run()
    return results


def print_set(name: str, r: dict) -> None:
    metric_names = list(next(iter(r["windows"].values()))["realized"])
    methods = list(next(iter(r["windows"].values()))["methods"])
    held = " (held back)" if r["held_back"] else ""
    print(f"\n== {name}{held}: {r['task']}, holdout {r['holdout_rows']} rows ==")
    for k in metric_names:
        head = f"{'window':<28}{'rows':>6}{'realized':>9}" + "".join(f"{m:>20}" for m in methods)
        print(f"-- {k}\n{head}")
        for wname, e in r["windows"].items():
            cells = "".join(
                f"{e['methods'][m][k]['value']:>11.3f} ±{e['methods'][m][k]['se'] or 0:6.3f} "
                if e["methods"][m][k]["value"] is not None
                else f"{'-':>20}"
                for m in methods
            )
            real = _num(e["realized"][k])
            print(f"{wname[:27]:<28}{e['rows']:>6}{real:>9}{cells}")
        for label, key in (("MAE shifted", "mae"), ("bias shifted", "bias"),
                           ("within 3 SE", "within_3se"), ("mean SE", "mean_se"),
                           ("unshifted error", "unshifted_error"),
                           ("MAE / nannyml's", "mae_vs_nannyml"),
                           ("mean SE / nannyml's", "se_vs_nannyml"),
                           ("median SE / nannyml's", "median_se_vs_nannyml")):  # fmt: skip
            vals = "".join(f"{_num(r['summary'][m][k].get(key)):>20}" for m in methods)
            print(f"{label:<43}{vals}")
    print("estimate ms (median per window): " + ", ".join(
        f"{m} {v}" for m, v in r["estimate_ms_median"].items()))  # fmt: skip


def _num(v) -> str:
    """A figure for the tables ("-" where a window has no such value, e.g. AUC of one class)."""
    return "-" if v is None else f"{v:.4f}"
