"""Benchmark of the prediction service: ``python -m bench.service_bench [--out DIR]``.

Not a test: it measures and prints. One invocation runs, on a default model trained into a
temporary VIGIL_HOME, with two workers:

(a) the service as shipped (inference log on SQLite and metrics on),
(b) the same with VIGIL_UNSAFE_DISABLE_LOGGING=true (no log write, no custom metrics),
(c) raw in-process ``predict_proba`` (one thread, no HTTP): the model's own ceiling,

at concurrency 1, 8 and 32 with 1-row and 100-row requests: requests/s, rows/s, p50, p99, and
the workers' CPU per request. The load comes from wrk (a Lua script posts the body) when it is
installed, else from a Python asyncio client (slower: it competes for the same two cores).
Results go to ``<out>/service.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import summary_lines

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 8, 32)
ROWS = (1, 100)
WARMUP_SECONDS = 2.0
MEASURE_SECONDS = 8.0
TARGETS = {
    "ratio_logged_over_unlogged_c32": 0.90,
    "one_row_c32_requests_per_second": 1000,
    "one_row_c32_p99_ms": 150,
    "hundred_rows_c32_rows_per_second": 20000,
}

WRK_SCRIPT = """
local f = assert(io.open(os.getenv("VIGIL_BENCH_BODY"), "r"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'VIGIL_JSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d, "mean_us": %f}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


def run(out_dir: Path) -> dict:
    """Run every case, print a table, write ``out_dir/service.json``; returns the results."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    try:
        home = _train(work / "home")
        bodies = _bodies(home, work)
        results: dict[str, Any] = {
            "client": "wrk" if shutil.which("wrk") else "python-asyncio",
            "cpus": os.cpu_count(),
            "warmup_seconds": WARMUP_SECONDS,
            "measure_seconds": MEASURE_SECONDS,
            "cases": [],
        }
        for variant, env in (
            ("a_logged", {}),
            ("b_unlogged", {"VIGIL_UNSAFE_DISABLE_LOGGING": "true"}),
        ):
            results["cases"] += _serve_and_measure(variant, home, env, bodies, work)
        results["raw_predict_proba"] = _raw_ceiling(home)
        results["summary"] = _summary(results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (out_dir / "service.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    return results


def _train(home: Path, args: tuple[str, ...] = ()) -> Path:
    """A home with a model trained by ``training.train --promote *args``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIL_", "BENTOML_"))}
    env.update({"VIGIL_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"})
    subprocess.run(
        [sys.executable, "-m", "training.train", "--promote", *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return home


def _bodies(home: Path, work: Path) -> dict[int, Path]:
    from vigil.registry.store import Registry
    from vigil.settings import get_settings

    bundle = Registry(get_settings(home=home)).load_production()
    reference = bundle.reference[bundle.schema.names]
    out = {}
    for rows in ROWS:
        frame = reference.sample(n=rows, random_state=rows, replace=len(reference) < rows)
        path = work / f"body-{rows}.json"
        path.write_text(json.dumps({"instances": frame.to_dict(orient="records")}))
        out[rows] = path
    return out


def _serve_and_measure(
    variant: str, home: Path, env: dict[str, str], bodies: dict[int, Path], work: Path
) -> list[dict]:
    from tests.conftest import free_port
    from tests.support.service import start_service

    cases = []
    with start_service(home, free_port(), {"VIGIL_WORKERS": "2", **env}) as server:
        for rows in ROWS:
            for concurrency in CONCURRENCY:
                _load(server.url, bodies[rows], concurrency, WARMUP_SECONDS, work)
                cpu_before = _cpu_seconds(server.worker_pids())
                measured = _load(server.url, bodies[rows], concurrency, MEASURE_SECONDS, work)
                cpu = _cpu_seconds(server.worker_pids()) - cpu_before
                measured.update(
                    variant=variant,
                    rows_per_request=rows,
                    concurrency=concurrency,
                    rows_per_second=round(measured["requests_per_second"] * rows, 1),
                    server_cpu_ms_per_request=round(1000 * cpu / max(1, measured["requests"]), 3),
                )
                cases.append(measured)
                print(_row(measured), flush=True)
    return cases


def _cpu_seconds(pids: list[int]) -> float:
    from tests.support.processes import cpu_seconds

    return sum(cpu_seconds(pid) for pid in pids)


def _load(url: str, body: Path, concurrency: int, seconds: float, work: Path) -> dict:
    if shutil.which("wrk"):
        return _wrk(url, body, concurrency, seconds, work)
    return asyncio.run(_python_load(url, body.read_bytes(), concurrency, seconds))


def _wrk(url: str, body: Path, concurrency: int, seconds: float, work: Path) -> dict:
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT)
    # One wrk thread: it is cheap, and every core it does not use serves requests.
    result = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "-s", str(script), f"{url}/predict"],
        env={**os.environ, "VIGIL_BENCH_BODY": str(body)},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    return wrk_figures(result)


def wrk_figures(result: subprocess.CompletedProcess) -> dict:
    """The figures a wrk run's Lua ``done`` printed (its ``VIGIL_JSON`` line)."""
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("VIGIL_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {result.stdout}\n{result.stderr}")
    raw = json.loads(line.removeprefix("VIGIL_JSON "))
    duration = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "errors": raw["non_2xx"] + raw["socket_errors"],
        "requests_per_second": round(raw["requests"] / duration, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
    }


async def _python_load(url: str, body: bytes, concurrency: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                response = await client.post(
                    f"{url}/predict", content=body, headers={"Content-Type": "application/json"}
                )
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)

    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def _raw_ceiling(home: Path) -> list[dict]:
    """``predict_proba`` in this process, one thread, on frames already built."""
    from vigil.registry.store import Registry
    from vigil.schema import to_frame
    from vigil.settings import get_settings

    bundle = Registry(get_settings(home=home)).load_production()
    reference = bundle.reference[bundle.schema.names]
    out = []
    for rows in (1, 100, 1000):
        frame = to_frame(bundle.schema, reference.sample(n=rows, random_state=0, replace=True))
        bundle.pipeline.predict_proba(frame)
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < 3.0:
            bundle.pipeline.predict_proba(frame)
            calls += 1
        elapsed = time.perf_counter() - start
        out.append(
            {
                "rows_per_call": rows,
                "ms_per_call": round(1000 * elapsed / calls, 3),
                "rows_per_second_one_core": round(calls * rows / elapsed, 1),
            }
        )
    return out


def _summary(results: dict) -> dict:
    def case(variant: str, rows: int, concurrency: int) -> dict:
        return next(
            c
            for c in results["cases"]
            if (c["variant"], c["rows_per_request"], c["concurrency"])
            == (variant, rows, concurrency)
        )

    one, hundred = case("a_logged", 1, 32), case("a_logged", 100, 32)
    measured = {
        "ratio_logged_over_unlogged_c32_1row": round(
            one["requests_per_second"] / case("b_unlogged", 1, 32)["requests_per_second"], 3
        ),
        "ratio_logged_over_unlogged_c32_100rows": round(
            hundred["requests_per_second"] / case("b_unlogged", 100, 32)["requests_per_second"],
            3,
        ),
        "one_row_c32_requests_per_second": one["requests_per_second"],
        "one_row_c32_p99_ms": one["p99_ms"],
        "hundred_rows_c32_rows_per_second": hundred["rows_per_second"],
    }
    met = {
        "ratio_logged_over_unlogged_c32": min(
            measured["ratio_logged_over_unlogged_c32_1row"],
            measured["ratio_logged_over_unlogged_c32_100rows"],
        )
        >= TARGETS["ratio_logged_over_unlogged_c32"],
        "one_row_c32_requests_per_second": measured["one_row_c32_requests_per_second"]
        >= TARGETS["one_row_c32_requests_per_second"],
        "one_row_c32_p99_ms": measured["one_row_c32_p99_ms"] <= TARGETS["one_row_c32_p99_ms"],
        "hundred_rows_c32_rows_per_second": measured["hundred_rows_c32_rows_per_second"]
        >= TARGETS["hundred_rows_c32_rows_per_second"],
    }
    return {"measured": measured, "targets": TARGETS, "met": met}


def _row(c: dict) -> str:
    return (
        f"{c['variant']:<11} {c['rows_per_request']:>4} {c['concurrency']:>4} "
        f"{c['requests_per_second']:>9.1f} {c['rows_per_second']:>10.1f} "
        f"{c['p50_ms']:>8.2f} {c['p99_ms']:>8.2f} {c['server_cpu_ms_per_request']:>8.3f} "
        f"{c['errors']:>6}"
    )


def table(results: dict) -> str:
    head = (
        f"{'variant':<11} {'rows':>4} {'conc':>4} {'req/s':>9} {'rows/s':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'cpu ms':>8} {'errors':>6}"
    )
    lines = [f"client: {results['client']}, {results['cpus']} CPUs", head, "-" * len(head)]
    lines += [_row(c) for c in results["cases"]]
    lines.append("")
    lines.append("(c) raw predict_proba, one thread in-process:")
    for r in results["raw_predict_proba"]:
        lines.append(
            f"  {r['rows_per_call']:>5} rows/call  {r['ms_per_call']:>8.3f} ms/call  "
            f"{r['rows_per_second_one_core']:>10.1f} rows/s"
        )
    lines.append("")
    lines += summary_lines(results["summary"])
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Benchmark the prediction service.")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    run(parser.parse_args().out)
