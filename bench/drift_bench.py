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

The running monitor (``python -m monitoring.drift run``, a subprocess on that log) is measured
too:

- verdict latency: ``vigil_drift_run_duration_seconds`` (window read, tests, gauges; the HTML
  report follows in its own thread) for 1k, 10k and 100k-row windows, median of 3 checks;
- reaction: from the commit of the last row of a full drifted window (1,000 rows, most
  features shifted by 1 SD) to ``vigil_drift_detected 1`` on the monitor's ``/metrics``, on
  default settings (each trial waits out ``VIGIL_DRIFT_MIN_INTERVAL_SECONDS`` first);
- counting: what the monitor's every-second "is a new window full?" query costs
  (``vigil.log.progress``) on a 10-million-row log, SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = (1_000, 10_000, 100_000, 1_000_000)
MONITOR_SIZES = (1_000, 10_000, 100_000)
REACTION_TRIALS = 3
SHIFTED = "mean texture"
REQUEST_ROWS = 100  # instances per logged request, as in the service benchmark's big requests


def _secs(result: dict) -> float:
    return result["seconds"]


def run(
    out_dir: Path, sizes: tuple[int, ...] = SIZES, repeats: int = 2, compare: bool = True
) -> dict:
    """``compare=False``: only the running monitor and the counting, not ours against raw."""
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
        for n in sizes if compare else ():
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
        monitor = _child(
            ["monitor", ",".join(str(n) for n in MONITOR_SIZES if n <= max(sizes))], env
        )
        _print_monitor(monitor)
        counting = _child(["counting", str(COUNT_LOG_ROWS)], env)
        _print_counting(counting)
    result = {
        "max_rows": int(env.get("VIGIL_DRIFT_MAX_ROWS", 100_000)),
        "cpus": os.cpu_count(),
        "repeats": repeats,
        "target": "ours/raw <= 1.3 at 100k rows; running monitor's verdict <= 0.2 s at 1k rows",
        "cases": cases,
        "running_monitor": monitor,
        "counting": counting,
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
    from vigil.log.inference_log import InferenceLog, LogRecord
    from vigil.log.prediction_ids import new_request_id
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
    from vigil.registry.store import Registry
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


def _metric(text: str, name: str) -> float | None:
    import re

    match = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, flags=re.MULTILINE)
    return float(match.group(1)) if match else None


class _RunningMonitor:
    """``python -m monitoring.drift run`` on the bench's home, with its /metrics read."""

    def __init__(self, **settings: object):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "VIGIL_MONITOR_PORT": str(port)}
        env.update({f"VIGIL_{k.upper()}": str(v) for k, v in settings.items()})
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitoring.drift", "run"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def metrics(self) -> str:
        import httpx

        try:
            return httpx.get(self.url, timeout=5).text
        except httpx.HTTPError:
            if self.proc.poll() is not None:
                raise RuntimeError("the monitor exited") from None
            return ""

    def ok_runs(self) -> int:
        return int(_metric(self.metrics(), 'vigil_drift_runs_total{outcome="ok"}') or 0)

    def wait_runs(self, n: int, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while self.ok_runs() < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the monitor made fewer than {n} checks in {timeout:g} s")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _child_monitor(sizes: str) -> dict:
    """Verdict latency of the running monitor per window size, then its reaction time."""
    latency = []
    for n in (int(s) for s in sizes.split(",") if s):
        # A check per interval (no new rows arrive), spaced so that the previous check's HTML
        # report, rendered in the monitor's other thread, is done: on default settings a
        # check comes at most every 15 s and a 1k-row report takes about 2 s.
        spacing = 6 + n / 4_000
        monitor = _RunningMonitor(
            drift_window_rows=n,
            drift_interval_seconds=spacing,
            drift_min_interval_seconds=spacing,
        )
        try:
            durations = []
            for i in range(1, 5):
                monitor.wait_runs(i)
                durations.append(
                    _metric(monitor.metrics(), "vigil_drift_run_duration_seconds") or 0.0
                )
            # The first check after start also loads the model and the reference sample.
            latency.append(
                {
                    "window_rows": n,
                    "verdict_seconds_median": round(statistics.median(durations[1:]), 4),
                    "verdict_seconds_all": [round(d, 4) for d in durations[1:]],
                    "first_check_seconds": round(durations[0], 4),
                }
            )
        finally:
            monitor.stop()
    return {"verdict_latency": latency, "reaction": _reaction()}


def _reaction() -> dict:
    """From the last row of a full drifted window to ``vigil_drift_detected 1``."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    from vigil.log.inference_log import InferenceLog, LogRecord
    from vigil.log.prediction_ids import new_request_id
    from vigil.registry.store import Registry
    from vigil.settings import get_settings

    settings = get_settings()
    tag = Registry(settings).production_tag()
    base = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    rng = np.random.default_rng(1)
    log = InferenceLog.from_settings(settings)

    def window(shift: float) -> list:
        pick = rng.integers(0, len(base), size=settings.drift_window_rows)
        rows = pd.DataFrame(base.to_numpy()[pick], columns=base.columns)
        rows = rows + shift * base.std()
        records = []
        for first in range(0, len(rows), REQUEST_ROWS):
            part = rows.iloc[first : first + REQUEST_ROWS]
            at = time.time()
            records.append(
                LogRecord(
                    request_id=new_request_id(at),
                    model_version=tag,
                    created_at=at,
                    instances={k: part[k].tolist() for k in part.columns},
                    predictions=[1] * len(part),
                    probabilities={"0": [0.3] * len(part), "1": [0.7] * len(part)},
                )
            )
        return records

    monitor = _RunningMonitor()  # default settings: window, intervals
    seconds = []
    try:
        monitor.wait_runs(1)
        for _ in range(REACTION_TRIALS):
            for shift, expected in ((0.0, 0), (1.0, 1)):
                text = monitor.metrics()
                last = _metric(text, "vigil_drift_last_run_timestamp_seconds") or 0.0
                # Wait out the minimum interval, so the measured time is the monitor's own.
                time.sleep(max(0.0, last + settings.drift_min_interval_seconds + 0.5 - time.time()))
                records = window(shift)
                log.write(records)
                committed = time.perf_counter()
                while _metric(monitor.metrics(), "vigil_drift_detected") != expected:
                    if time.perf_counter() - committed > 120:
                        raise RuntimeError("no verdict within 120 s of a full window")
                    time.sleep(0.005)
                if expected:
                    seconds.append(time.perf_counter() - committed)
    finally:
        monitor.stop()
        log.close()
    return {
        "window_rows": settings.drift_window_rows,
        "seconds_median": round(statistics.median(seconds), 3),
        "seconds_all": [round(s, 3) for s in seconds],
    }


COUNT_LOG_ROWS = int(os.environ.get("VIGIL_BENCH_COUNT_LOG_ROWS", "10000000"))
COUNT_ROWS_PER_REQUEST = 10


def _child_counting(rows: str) -> dict:
    """The monitor's new-row count on a log of ``rows`` rows (10 per request): SQLite, and
    PostgreSQL when it is reachable."""
    from vigil.log.inference_log import InferenceLog

    n = int(rows)
    out = {"log_rows": n, "rows_per_request": COUNT_ROWS_PER_REQUEST, "backends": []}
    with tempfile.TemporaryDirectory(prefix="vigil-count-") as tmp:
        log = InferenceLog(f"sqlite:///{tmp}/log.db", "vigil_", timeout=60)
        try:
            out["backends"].append(_count_on(log, n, _fill_sqlite))
        finally:
            log.close()
    try:
        from bench.log_bench import URL

        log = InferenceLog(URL, f"c{os.getpid()}_", timeout=60)
        log.create_schema()
    except Exception as exc:  # no PostgreSQL here: SQLite alone
        out["postgresql_skipped"] = str(exc).splitlines()[0]
        return out
    try:
        out["backends"].append(_count_on(log, n, _fill_postgres))
    finally:
        log.drop_schema()
        log.close()
    return out


def _fill_sqlite(log, records: int, start: float, step: float) -> None:
    import sqlalchemy as sa

    from vigil.log.format import dumps

    k = COUNT_ROWS_PER_REQUEST
    log.create_schema()
    sql = sa.text(
        "WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i < :hi) "
        f'INSERT INTO "{log.requests.name}" (request_id, model_version, created_at, row_count, '
        "instances, predictions, probabilities) "
        "SELECT printf('%012x%020d', CAST((:start + i * :step) * 1000 AS INTEGER), i), "
        "'vigil-model:bench', :start + i * :step, :k, :inst, :preds, :probs FROM g"
    )
    with log.engine.begin() as conn:
        conn.execute(
            sql,
            {
                "hi": records - 1,
                "start": start,
                "step": step,
                "k": k,
                "inst": dumps({"f0": [0.5] * k}),
                "preds": dumps([1] * k),
                "probs": dumps({"0": [0.3] * k, "1": [0.7] * k}),
            },
        )


def _fill_postgres(log, records: int, start: float, step: float) -> None:
    from bench import log_bench  # its rows span its own 30 days, like these

    log_bench.partition_days(log)
    log_bench._fill(log, records * COUNT_ROWS_PER_REQUEST, COUNT_ROWS_PER_REQUEST)


def _count_on(log, n: int, fill) -> dict:
    """Fill, then time ``newest`` and ``rows_after`` as the monitor asks them: from a position
    one window behind the end (a poll), and from the log's first record (worst case)."""
    from vigil.log.progress import LogProgress, Position

    records = n // COUNT_ROWS_PER_REQUEST
    now = time.time()
    started = time.perf_counter()
    fill(log, records, now - 30 * 86_400, 30 * 86_400 / records)
    made = time.perf_counter() - started
    progress, tag, window = LogProgress(log), "vigil-model:bench", 1_000

    def timed(fn, repeats: int = 20) -> tuple[float, object]:
        times, result = [], None
        for _ in range(repeats):
            began = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - began)
        return statistics.median(times), result

    newest_s, newest = timed(lambda: progress.newest(tag))
    r = log.requests
    import sqlalchemy as sa

    with log.engine.connect() as conn:
        behind = conn.execute(
            sa.select(r.c.id, r.c.created_at)
            .where(r.c.model_version == tag)
            .order_by(r.c.id.desc())
            .offset(window // COUNT_ROWS_PER_REQUEST)
            .limit(1)
        ).one()
    poll_s, poll = timed(
        lambda: progress.rows_after(tag, Position(int(behind.id), float(behind.created_at)), window)
    )
    first_s, first = timed(lambda: progress.rows_after(tag, Position(0, 0.0), window))
    assert poll.rows == window and first.rows >= window, (poll, first)
    return {
        "backend": log.engine.dialect.name,
        "fill_seconds": round(made, 1),
        "newest_ms": round(newest_s * 1e3, 3),
        "poll_one_window_behind_ms": round(poll_s * 1e3, 3),
        "from_first_record_ms": round(first_s * 1e3, 3),
    }


def _print_monitor(result: dict) -> None:
    print("running monitor: verdict (read + tests + gauges), median of 3 checks", flush=True)
    for case in result["verdict_latency"]:
        print(
            f"  {case['window_rows']:>7,} rows: {case['verdict_seconds_median'] * 1e3:8.1f} ms"
            f" (first check after start, loading the model: {case['first_check_seconds']:.2f} s)",
            flush=True,
        )
    r = result["reaction"]
    print(
        f"last row of a full drifted window ({r['window_rows']:,} rows) -> vigil_drift_detected 1"
        f": {r['seconds_median'] * 1e3:.0f} ms median of {len(r['seconds_all'])}",
        flush=True,
    )


def _print_counting(result: dict) -> None:
    print(f"counting new rows on a {result['log_rows']:,}-row log (median of 20):", flush=True)
    for b in result["backends"]:
        print(
            f"  {b['backend']:>10}: newest {b['newest_ms']:.2f} ms, "
            f"poll {b['poll_one_window_behind_ms']:.2f} ms, "
            f"from the first record {b['from_first_record_ms']:.2f} ms"
            f" (log made in {b['fill_seconds']:.0f} s)",
            flush=True,
        )
    if "postgresql_skipped" in result:
        print(f"  postgresql skipped: {result['postgresql_skipped']}", flush=True)


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
    parser.add_argument(
        "--monitor-only",
        action="store_true",
        help="Only the running monitor's figures and the counting cost (no raw Evidently runs)",
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, arg = args.child
        children = {
            "prepare": _prepare,
            "monitor": _child_monitor,
            "counting": _child_counting,
            "ours": lambda a: _child_ours(int(a)),
            "raw": lambda a: _child_raw(int(a)),
        }
        result = children[mode](arg)
        result["peak_rss_mb"] = _peak_rss_mb()
        print(json.dumps(result), flush=True)
        return
    sizes = tuple(int(s) for s in args.sizes.split(","))
    run(args.out, sizes, args.repeats, compare=not args.monitor_only)


if __name__ == "__main__":
    main()
