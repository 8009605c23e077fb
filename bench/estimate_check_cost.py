"""What the quality estimate adds to a 1,000-row check, as the check calls it.

A classifier (breast cancer) and a regressor (diabetes), each the default model trained
through ``training.train``; the estimator loaded as the monitor loads it (its sampling part
measured once, at load); then ``monitoring.estimate.window_estimate`` on the same logged
window of 1,000 rows, timed over repeated checks (median and fastest wall time, and the
process's CPU time, which other jobs on a shared machine do not inflate).

    python -m bench.estimate_check_cost
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

WINDOW_ROWS = 1000
REPEATS = 15
SEED = 7


def _trained(frame, task: str, home: Path):
    from training.data import check
    from training.train import train
    from vigil.registry import Registry
    from vigil.settings import get_settings

    settings = get_settings(home=home, require_signed_models=False)
    dataset = check(frame, "target", task, task, task)
    return Registry(settings).load(train(settings, dataset, seed=SEED).model_tag)


def _logged(bundle, frame):
    """A window as the inference log reads it: the model input, the prediction and, for a
    classifier, the probabilities per class."""
    from vigil.schema import to_frame

    rng = np.random.default_rng(SEED)
    rows = frame.drop(columns="target").iloc[rng.integers(0, len(frame), WINDOW_ROWS)]
    rows = rows.reset_index(drop=True)
    x = to_frame(bundle.schema, rows)
    if bundle.schema.classes:
        proba = bundle.pipeline.predict_proba(x)
        classes = [str(c) for c in bundle.schema.classes]
        return rows.assign(
            probabilities=[dict(zip(classes, map(float, p), strict=True)) for p in proba],
            prediction=[classes[i] for i in proba.argmax(axis=1)],
        )
    return rows.assign(prediction=bundle.pipeline.predict(x))


def measure(frame, task: str, home: Path) -> dict:
    from monitoring.estimate import window_estimate
    from vigil.estimate import QualityEstimator

    bundle = _trained(frame, task, home)
    started = time.perf_counter()
    estimator = QualityEstimator.of(bundle)
    load_ms = 1000 * (time.perf_counter() - started)
    window = _logged(bundle, frame)
    times, cpu = [], []
    for _ in range(REPEATS):
        started, started_cpu = time.perf_counter(), time.process_time()
        window_estimate(estimator, bundle.schema, window)
        times.append(1000 * (time.perf_counter() - started))
        cpu.append(1000 * (time.process_time() - started_cpu))
    return {"estimator": estimator.method.name, "load_ms": round(load_ms, 1),
            "check_ms_median": round(float(np.median(times)), 1),
            "check_ms_fastest": round(float(min(times)), 1),
            "check_cpu_ms_median": round(float(np.median(cpu)), 1)}  # fmt: skip


def run() -> dict:
    from sklearn.datasets import load_breast_cancer, load_diabetes

    out = {}
    with tempfile.TemporaryDirectory(prefix="vigil-estimate-cost-") as tmp:
        for task, frame in (("classification", load_breast_cancer(as_frame=True).frame),
                            ("regression", load_diabetes(as_frame=True).frame)):  # fmt: skip
            out[task] = measure(frame, task, Path(tmp) / task)
            r = out[task]
            print(f"{task}: {r['estimator']} adds {r['check_ms_median']} ms (median of "
                  f"{REPEATS}; fastest {r['check_ms_fastest']} ms; CPU "
                  f"{r['check_cpu_ms_median']} ms) to a {WINDOW_ROWS}-row check; loading it "
                  f"took {r['load_ms']} ms")  # fmt: skip
    return out


if __name__ == "__main__":
    run()
