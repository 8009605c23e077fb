"""scikit-learn vs ONNX WorkerState through the service: ``python -m bench.inference_bench``.

Not a test. For each model in ``MODELS`` (the default forest classifier, a 100-tree forest
regressor on diabetes, a hist_gradient_boosting classifier; each trained into a temporary
VIGIL_HOME), two workers, logging and metrics on, the service is started with
VIGIL_INFERENCE=sklearn and =onnx alternately (A B A B, so drift in the shared machine's load
hits both): 1-row at c=1 (p50, p99), 1-row at c=32 (req/s, p99), 100-row at c=32 (rows/s);
plus each runtime's raw in-process ceiling. The targets hold for every model. Results go to
``<out>/inference.json``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.service_bench import _bodies, _load, _train

RUNTIMES = ("sklearn", "onnx")
# name -> training.train arguments
MODELS = {
    "rf_classifier": (),
    "rf_regressor": ("--dataset", "diabetes", "--n-estimators", "100"),
    "hgb_classifier": ("--estimator", "hist_gradient_boosting"),
}
ROUNDS = 2
CASES = ((1, 1), (1, 32), (100, 32))  # (rows per request, concurrency)
WARMUP_SECONDS = 2.0
MEASURE_SECONDS = 6.0
TARGETS = {
    "onnx_1row_c1_p50_ms": 3.0,
    "onnx_over_sklearn_1row_c32": 1.5,
    "onnx_1row_c32_p99_ms": 50.0,
    "onnx_100rows_c32_rows_per_second": 150_000,
}


def run(out_dir: Path, models: tuple[str, ...] = tuple(MODELS)) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-inference-"))
    results: dict = {"measure_seconds": MEASURE_SECONDS, "models": {}}
    try:
        print(HEAD, flush=True)
        for model in models:
            results["models"][model] = _measure_model(model, work / model)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (out_dir / "inference.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    return results


def _measure_model(model: str, work: Path) -> dict:
    from tests.conftest import free_port
    from tests.support.service import start_service

    work.mkdir(parents=True)
    home = _train(work / "home", MODELS[model])
    bodies = _bodies(home, work)
    cases: list[dict] = []
    for round_ in range(ROUNDS):
        for runtime in RUNTIMES:
            env = {"VIGIL_WORKERS": "2", "VIGIL_INFERENCE": runtime}
            with start_service(home, free_port(), env) as server:
                for rows, concurrency in CASES:
                    _load(server.url, bodies[rows], concurrency, WARMUP_SECONDS, work)
                    m = _load(server.url, bodies[rows], concurrency, MEASURE_SECONDS, work)
                    m.update(
                        model=model, runtime=runtime, round=round_, rows_per_request=rows,
                        concurrency=concurrency,
                        rows_per_second=round(m["requests_per_second"] * rows, 1),
                    )  # fmt: skip
                    cases.append(m)
                    print(_row(m), flush=True)
    results = {"cases": cases, "raw": _raw(home, model)}
    results["summary"] = _summary(results)
    return results


def _raw(home: Path, model: str) -> list[dict]:
    """Each runtime's model call in this process, one thread, inputs already built."""
    from vigil.inference import load_inference
    from vigil.registry.store import Registry
    from vigil.schema import record_columns
    from vigil.settings import get_settings

    bundle = Registry(get_settings(home=home)).load_production()
    reference = bundle.reference[bundle.schema.names]
    out = []
    for runtime in RUNTIMES:
        inference = load_inference(bundle, runtime)
        for rows in (1, 100, 1000):
            sample = reference.sample(n=rows, random_state=0, replace=True)
            columns = record_columns(json.loads(sample.to_json(orient="records")))
            inference.predict(columns, rows)
            calls, start = 0, time.perf_counter()
            while time.perf_counter() - start < 2.0:
                inference.predict(columns, rows)
                calls += 1
            elapsed = time.perf_counter() - start
            out.append({
                "model": model, "runtime": runtime, "rows_per_call": rows,
                "ms_per_call": round(1000 * elapsed / calls, 4),
                "rows_per_second_one_core": round(calls * rows / elapsed, 1),
            })  # fmt: skip
    return out


def _summary(results: dict) -> dict:
    def median(runtime, rows, concurrency, key):
        return statistics.median(
            c[key] for c in results["cases"]
            if (c["runtime"], c["rows_per_request"], c["concurrency"])
            == (runtime, rows, concurrency)
        )  # fmt: skip

    measured = {
        "onnx_1row_c1_p50_ms": median("onnx", 1, 1, "p50_ms"),
        "sklearn_1row_c1_p50_ms": median("sklearn", 1, 1, "p50_ms"),
        "onnx_over_sklearn_1row_c32": round(
            median("onnx", 1, 32, "requests_per_second")
            / median("sklearn", 1, 32, "requests_per_second"),
            2,
        ),
        "onnx_1row_c32_p99_ms": median("onnx", 1, 32, "p99_ms"),
        "onnx_100rows_c32_rows_per_second": median("onnx", 100, 32, "rows_per_second"),
        "sklearn_100rows_c32_rows_per_second": median("sklearn", 100, 32, "rows_per_second"),
    }
    met = {
        "onnx_1row_c1_p50_ms": measured["onnx_1row_c1_p50_ms"] <= TARGETS["onnx_1row_c1_p50_ms"],
        "onnx_over_sklearn_1row_c32": measured["onnx_over_sklearn_1row_c32"]
        >= TARGETS["onnx_over_sklearn_1row_c32"],
        "onnx_1row_c32_p99_ms": measured["onnx_1row_c32_p99_ms"] <= TARGETS["onnx_1row_c32_p99_ms"],
        "onnx_100rows_c32_rows_per_second": measured["onnx_100rows_c32_rows_per_second"]
        >= TARGETS["onnx_100rows_c32_rows_per_second"],
    }
    return {"measured": measured, "targets": TARGETS, "met": met}


def _row(c: dict) -> str:
    return (
        f"{c['model']:<15} {c['runtime']:<8} r{c['round']} {c['rows_per_request']:>4} "
        f"{c['concurrency']:>4} "
        f"{c['requests_per_second']:>9.1f} {c['rows_per_second']:>10.1f} "
        f"{c['p50_ms']:>8.2f} {c['p99_ms']:>8.2f} {c['errors']:>6}"
    )


HEAD = (
    f"{'model':<15} {'runtime':<8} rnd {'rows':>4} {'conc':>4} {'req/s':>9} {'rows/s':>10} "
    f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
)


def table(results: dict) -> str:
    lines = [HEAD, "-" * len(HEAD)]
    for model in results["models"].values():
        lines += map(_row, model["cases"])
    lines += ["", "raw model call:"]
    for model in results["models"].values():
        for r in model["raw"]:
            lines.append(
                f"  {r['model']:<15} {r['runtime']:<8} {r['rows_per_call']:>5} rows/call "
                f"{r['ms_per_call']:>9.4f} ms {r['rows_per_second_one_core']:>12.1f} rows/s"
            )
    for name, model in results["models"].items():
        summary = model["summary"]
        lines += ["", f"{name}:"]
        lines += [f"  {k}: {v}" for k, v in summary["measured"].items()]
        lines += [
            f"  target {k} {TARGETS[k]}: {'met' if ok else 'NOT met'}"
            for k, ok in summary["met"].items()
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="sklearn vs ONNX WorkerState through the service.")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--model", action="append", choices=list(MODELS), help="repeatable")
    args = parser.parse_args()
    run(args.out, tuple(args.model or MODELS))
