"""Drift-check benchmark: our check against raw Evidently on the same rows.

    python -m bench.drift_bench [--out bench-results] [--sizes 1000,10000,100000,1000000]

One inference log of the largest size is filled with breast-cancer rows (resampled, one feature
shifted by 0.5 SD), logged 100 per request as the service logs them; each size is the newest N
rows of it. Every measurement runs in a child
process of its own, which reports its own peak RSS (``VmHWM``):

- ours: ``Checker.check()`` as the long-running monitor runs it (imports done, model loaded):
  read the window from the log (sampled above ``VIGIL_DRIFT_MAX_ROWS``), test, write the HTML
  report; plus the read's parts (SQL fetch, JSON parsing) timed on their own;
- raw: Evidently's ``Report([DataDriftPreset()])`` with its defaults on the same rows, already
  in memory as a DataFrame (the full N rows, never sampled), HTML rendered and written.

Both children's whole lives (interpreter, imports) are also timed as ``process_seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = (1_000, 10_000, 100_000, 1_000_000)
SHIFTED = "mean texture"
REQUEST_ROWS = 100  # instances per logged request, as in the service benchmark's big requests


def _secs(result: dict) -> float:
    return result["seconds"]


def run(out_dir: Path, sizes: tuple[int, ...] = SIZES, repeats: int = 2) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vigil-drift-bench-") as tmp:
        work = Path(tmp)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "VIGIL_HOME": str(work / "home"),
            "BENTOML_DO_NOT_TRACK": "true",
            "BENCH_ROWS": str(work / "rows-{n}.parquet"),
        }
        env.pop("VIGIL_DATABASE_URL", None)
        # In a child too: this process stays small, so nothing it holds shows in the others.
        prepared = _child(["prepare", ",".join(map(str, sizes))], env)
        print(f"prepared {max(sizes)} logged rows in {prepared['seconds']:.0f}s", flush=True)
        cases = []
        print(HEADER, flush=True)
        for n in sizes:
            # Best of ``repeats``: other load on the machine only ever adds time.
            ours = min((_child(["ours", str(n)], env) for _ in range(repeats)), key=_secs)
            raw = min((_child(["raw", str(n)], env) for _ in range(repeats)), key=_secs)
            cases.append(
                {
                    "rows": n,
                    "ours": ours,
                    "raw_evidently": raw,
                    "ratio": round(ours["seconds"] / raw["seconds"], 3),
                }
            )
            _print_row(cases[-1])
    result = {
        "max_rows": int(env.get("VIGIL_DRIFT_MAX_ROWS", 100_000)),
        "cpus": os.cpu_count(),
        "repeats": repeats,
        "target": "ours/raw <= 1.3 at 100k rows",
        "cases": cases,
    }
    (out_dir / "drift_bench.json").write_text(json.dumps(result, indent=2))
    return result


def _prepare(sizes: str) -> dict:
    """Train the default model, log the largest size's rows, save each size's window (the
    newest N rows) for the raw runs."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    from training.data import load
    from training.train import train
    from vigil.inference_log import InferenceLog, LogRecord
    from vigil.prediction_ids import new_request_id
    from vigil.settings import get_settings

    started = time.perf_counter()
    windows = [int(s) for s in sizes.split(",")]
    n = max(windows)
    settings = get_settings()
    tag = train(settings, load(None, None), promote=True).model_tag
    base = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    base[SHIFTED] += 0.5 * base[SHIFTED].std()
    pick = np.random.default_rng(0).integers(0, len(base), size=n)
    rows = pd.DataFrame(base.to_numpy()[pick], columns=base.columns)
    columns = {name: rows[name].tolist() for name in rows.columns}
    log = InferenceLog.from_settings(settings)
    log.create_schema()
    now = time.time()

    def requests():
        # Logged as the service logs them: REQUEST_ROWS instances per request.
        for first in range(0, n, REQUEST_ROWS):
            size = min(REQUEST_ROWS, n - first)
            at = now - (n - first) * 1e-3
            yield LogRecord(
                request_id=new_request_id(at),
                model_version=tag,
                created_at=at,
                instances={k: v[first : first + size] for k, v in columns.items()},
                predictions=[1] * size,
                probabilities={"0": [0.3] * size, "1": [0.7] * size},
            )

    log.write(requests())
    log.close()
    for size in windows:  # a file each: the raw runs hold only their own rows
        rows.tail(size).to_parquet(os.environ["BENCH_ROWS"].format(n=size))
    return {"seconds": round(time.perf_counter() - started, 1)}


def _child(args: list[str], env: dict) -> dict:
    started = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.drift_bench", "--child", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench child {args} failed:\n{proc.stdout}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(time.time() - started, 2)
    return result


def _peak_rss_mb() -> int:
    """This process's own peak RSS. Not ``ru_maxrss``: Linux carries the parent's high-water
    mark into a child across ``exec``, so a child of a big parent looks big."""
    with open("/proc/self/status") as fh:
        kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM"))
    return round(kb / 1024)


def _child_ours(n: int) -> dict:
    import evidently  # noqa: F401 (imported before timing, as in the running monitor)

    from monitoring.check import Checker
    from vigil.settings import get_settings

    settings = get_settings()
    checker = Checker(settings)
    bundle = checker.production()[0]  # loaded once by the monitor, not per check
    started = time.perf_counter()
    payload = checker.check(window_rows=n).payload
    seconds = time.perf_counter() - started
    parts = _read_parts(checker.log, bundle.tag, n, settings.drift_max_rows)
    return {
        "seconds": round(seconds, 3),
        "window_rows": payload["window_rows"],
        "tested_rows": payload["tested_rows"],
        "sampled": payload["sampled"],
        "drifted_features": payload["drifted_features"],
        **parts,
    }


def _read_parts(log, tag: str, n: int, max_rows: int) -> dict:
    """The window read on its own, and its SQL fetch and JSON parsing apart (with the
    parser the log uses, and with json.loads for comparison)."""
    import sqlalchemy as sa

    started = time.perf_counter()
    window = log.latest(tag, n, max_rows=max_rows)
    read = time.perf_counter() - started
    r = log.requests
    # The records holding the newest min(n, max_rows) rows: what an unsampled read parses.
    records = -(-min(n, max_rows) // REQUEST_ROWS)
    stmt = sa.select(r.c.instances).order_by(r.c.id.desc()).limit(records)
    started = time.perf_counter()
    with log.engine.connect() as conn:
        texts = list(conn.scalars(stmt))
    fetch = time.perf_counter() - started
    out = {"read_seconds": round(read, 3), "read_rows": len(window.frame)}
    out["sql_fetch_seconds"] = round(fetch, 3)
    started = time.perf_counter()
    for text in texts:
        json.loads(text)
    out["json_loads_parse_seconds"] = round(time.perf_counter() - started, 3)
    import pydantic_core  # what the log parses with

    started = time.perf_counter()
    for text in texts:
        pydantic_core.from_json(text)
    out["pydantic_core_parse_seconds"] = round(time.perf_counter() - started, 3)
    return out


def _child_raw(n: int) -> dict:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    from monitoring.report import _value_drifts
    from vigil.registry import Registry
    from vigil.settings import get_settings

    bundle = Registry(get_settings()).load_production()
    names = bundle.schema.names
    reference = bundle.reference[names]
    current = pd.read_parquet(os.environ["BENCH_ROWS"].format(n=n)).reset_index(drop=True)
    target = Path(tempfile.mkdtemp()) / "raw.html"
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        current_data=current, reference_data=reference
    )
    snapshot.save_html(str(target))
    seconds = time.perf_counter() - started
    drifted = [c for c, v in _value_drifts(snapshot.dict()).items() if v["drifted"]]
    return {"seconds": round(seconds, 3), "rows": len(current), "drifted_features": drifted}


HEADER = (
    f"{'rows':>9} {'sampled':>8} {'ours s':>8} {'raw s':>8} {'ratio':>6} "
    f"{'ours MB':>8} {'raw MB':>8} {'read s':>7} {'parse s':>7} {'json.loads s':>12}"
)


def _print_row(case: dict) -> None:
    ours, raw = case["ours"], case["raw_evidently"]
    print(
        f"{case['rows']:>9} {str(ours['sampled']):>8} {ours['seconds']:>8.2f} "
        f"{raw['seconds']:>8.2f} {case['ratio']:>6.2f} {ours['peak_rss_mb']:>8} "
        f"{raw['peak_rss_mb']:>8} {ours['read_seconds']:>7.2f} "
        f"{ours['pydantic_core_parse_seconds']:>7.2f} {ours['json_loads_parse_seconds']:>12.2f}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark the drift check against Evidently.")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="Window sizes")
    parser.add_argument("--repeats", type=int, default=2, help="Runs per case (best kept)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, arg = args.child
        result = (
            _prepare(arg)
            if mode == "prepare"
            else {"ours": _child_ours, "raw": _child_raw}[mode](int(arg))
        )
        result["peak_rss_mb"] = _peak_rss_mb()
        print(json.dumps(result), flush=True)
        return
    run(args.out, tuple(int(s) for s in args.sizes.split(",")), args.repeats)


if __name__ == "__main__":
    main()
