"""Benchmark of the Open Inference Protocol: ``python -m bench --only protocol``.

Not a test: it measures and prints. One 2-worker service (inference log on SQLite, metrics on)
serves the default model; wrk (one thread) sends, for each workload, the same rows as

- ``predict``: ``POST /predict`` JSON,
- ``v2_json``: ``POST /v2/models/vigil-model/infer``, one 2-D FP64 tensor as JSON, JSON answer,
- ``v2_binary``: the same with Triton's binary tensor extension both ways,

alternating A B C A B C in one run (two rounds; the table shows each round and their mean;
rows/s counts rows answered 200, req/s every answer, 503s of overload included), so
a slow spell of the shared machine falls on every variant alike. Workloads: 1 row at c=1 and
c=32, 100 rows at c=32, 1,000 rows at c=8. With ``VIGIL_BENCH_MLSERVER`` pointing at an
``mlserver`` executable (MLServer 1.7.1 in a virtualenv of its own, with mlserver-sklearn and
``uvloop<0.22``: its workers fail to start with uvloop 0.22's ``get_event_loop``),
the same scikit-learn pipeline is also served by MLServer and measured the same way (V2 JSON,
one input per feature, no logging): the peer figure. Results go to ``<out>/protocol.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import summary_lines
from bench.service_bench import _cpu_seconds, _train, wrk_figures

WORKLOADS = ((1, 1), (1, 32), (100, 32), (1000, 8))  # (rows per request, concurrency)
VARIANTS = ("predict", "v2_json", "v2_binary")
ROUNDS = 2
WARMUP_SECONDS = 1.0
MEASURE_SECONDS = 5.0
INFER = "/v2/models/vigil-model/infer"
TARGETS = {
    "v2_binary_100_rows_c32_rows_per_second": 150_000,
    "v2_binary_over_predict_100_rows": 2.0,
    "v2_1_row_c1_p50_ms": 2.0,
}

WRK_SCRIPT = """
local f = assert(io.open(os.getenv("VIGIL_BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("VIGIL_BENCH_TYPE")
local header = os.getenv("VIGIL_BENCH_HEADER_LENGTH")
if header ~= nil and header ~= "" then
  wrk.headers["Inference-Header-Content-Length"] = header
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'VIGIL_JSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def run(out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not shutil.which("wrk"):
        # Its bodies carry a header wrk's Lua sets; the other sections' Python client has none.
        print("skipped: the protocol benchmark needs wrk (apt-get install -y wrk)")
        return {"skipped": "wrk is not installed"}
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-v2-"))
    try:
        home = _train(work / "home")
        frames = _frames(home)
        bodies = {rows: _bodies(frame, work) for rows, frame in frames.items()}
        results: dict[str, Any] = {"cpus": os.cpu_count(), "cases": [], "peer": None}
        results["cases"] = _measure_vigil(home, bodies, work)
        try:
            results["peer"] = _measure_mlserver(home, frames, work)
        except Exception as exc:  # the peer's failure must not lose our figures
            results["peer"] = {"skipped": f"MLServer failed: {str(exc)[-300:]}"}
        results["summary"] = _summary(results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (out_dir / "protocol.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    return results


def _frames(home: Path) -> dict[int, Any]:
    from vigil.registry.store import Registry
    from vigil.settings import get_settings

    bundle = Registry(get_settings(home=home)).load_production()
    reference = bundle.reference[bundle.schema.names]
    rows = sorted({r for r, _ in WORKLOADS})
    return {n: reference.sample(n=n, random_state=n, replace=len(reference) < n) for n in rows}


def _bodies(frame, work: Path) -> dict[str, tuple[Path, str, str]]:
    """variant -> (body file, Content-Type, Inference-Header-Content-Length or "")."""
    n, names = len(frame), list(frame.columns)
    matrix = frame.to_numpy(dtype=np.float64)
    tensor = {"name": "input-0", "datatype": "FP64", "shape": [n, len(names)]}
    predict = json.dumps({"instances": frame.to_dict(orient="records")}).encode()
    v2_json = json.dumps({"inputs": [{**tensor, "data": matrix.reshape(-1).tolist()}]}).encode()
    raw = matrix.astype("<f8").tobytes()
    head = json.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    out = {}
    for variant, body, kind, length in (
        ("predict", predict, "application/json", ""),
        ("v2_json", v2_json, "application/json", ""),
        ("v2_binary", head + raw, "application/octet-stream", str(len(head))),
    ):
        path = work / f"{variant}-{n}.body"
        path.write_bytes(body)
        out[variant] = (path, kind, length)
    return out


def _measure_vigil(home: Path, bodies: dict, work: Path) -> list[dict]:
    from tests.conftest import free_port
    from tests.support.service import start_service

    cases = []
    with start_service(home, free_port(), {"VIGIL_WORKERS": "2"}) as server:
        for rows, concurrency in WORKLOADS:
            for round_ in range(1, ROUNDS + 1):
                for variant in VARIANTS:
                    path = "/predict" if variant == "predict" else INFER
                    body = bodies[rows][variant]
                    _wrk(f"{server.url}{path}", body, concurrency, WARMUP_SECONDS, work)
                    cpu_before = _cpu_seconds(server.worker_pids())
                    measured = _wrk(f"{server.url}{path}", body, concurrency, MEASURE_SECONDS, work)
                    cpu = _cpu_seconds(server.worker_pids()) - cpu_before
                    measured.update(
                        server="vigil",
                        variant=variant,
                        round=round_,
                        rows_per_request=rows,
                        concurrency=concurrency,
                        body_bytes=body[0].stat().st_size,
                        rows_per_second=_answered_rows(measured, rows),
                        server_cpu_ms_per_request=round(
                            1000 * cpu / max(1, measured["requests"]), 3
                        ),
                    )
                    cases.append(measured)
                    print(_row(measured), flush=True)
    return cases


def _measure_mlserver(home: Path, frames: dict, work: Path) -> dict:
    """MLServer 1.7.1 serving the same pipeline, if ``VIGIL_BENCH_MLSERVER`` names it."""
    executable = os.environ.get("VIGIL_BENCH_MLSERVER")
    if not executable or not Path(executable).exists():
        return {"skipped": "VIGIL_BENCH_MLSERVER is not set to an mlserver executable"}
    import joblib

    from tests.conftest import free_port
    from tests.support.processes import descendants
    from vigil.registry.store import Registry
    from vigil.settings import get_settings

    bundle = Registry(get_settings(home=home)).load_production()
    models = work / "mlserver" / "vigil"
    models.mkdir(parents=True)
    joblib.dump(bundle.pipeline, models / "model.joblib")
    (models / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "vigil",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    port, grpc, metrics = free_port(), free_port(), free_port()
    (models.parent / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": grpc,
                "metrics_port": metrics,
                "parallel_workers": 2,
                "debug": False,
            }
        )
    )
    log = open(work / "mlserver.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [executable, "start", str(models.parent)],
        cwd=models.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    cases = []
    try:
        _wait(f"{url}/v2/models/vigil/ready", proc, work / "mlserver.log")
        for rows, concurrency in WORKLOADS:
            frame = frames[rows]
            body = work / f"mlserver-{rows}.body"
            body.write_text(json.dumps(_pandas_codec(frame)))
            spec = (body, "application/json", "")
            target = f"{url}/v2/models/vigil/infer"
            _wrk(target, spec, concurrency, WARMUP_SECONDS, work)
            measured = _wrk(target, spec, concurrency, MEASURE_SECONDS, work)
            measured.update(
                server="mlserver",
                variant="mlserver_v2_json",
                round=1,
                rows_per_request=rows,
                concurrency=concurrency,
                body_bytes=body.stat().st_size,
                rows_per_second=_answered_rows(measured, rows),
                server_cpu_ms_per_request=None,
            )
            cases.append(measured)
            print(_row(measured), flush=True)
    finally:
        for pid in [proc.pid, *descendants(proc.pid)]:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        proc.wait(10)
        log.close()
    return {"version": _version(executable), "cases": cases}


def _answered_rows(measured: dict, rows: int) -> float:
    """Rows per second answered 200: a shed request (503) or a timeout answered none."""
    answered = (measured["requests"] - measured["errors"]) / max(1, measured["requests"])
    return round(measured["requests_per_second"] * answered * rows, 1)


def _version(executable: str) -> str:
    result = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=60)
    return (result.stdout or result.stderr).strip()


def _pandas_codec(frame) -> dict:
    # MLServer's PandasCodec.encode_request wire format (see tests/service/v2).
    return {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {
                "name": name,
                "datatype": "FP64",
                "shape": [len(frame), 1],
                "data": frame[name].astype(float).tolist(),
            }
            for name in frame.columns
        ],
    }


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlserver exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"mlserver not ready: {log.read_text(errors='replace')[-2000:]}")


def _wrk(url: str, body: tuple[Path, str, str], concurrency: int, seconds: float, work: Path):
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT)
    path, kind, length = body
    env = {
        **os.environ,
        "VIGIL_BENCH_BODY": str(path),
        "VIGIL_BENCH_TYPE": kind,
        "VIGIL_BENCH_HEADER_LENGTH": length,
    }
    result = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "-s", str(script), url],
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    return wrk_figures(result)


def mean_case(cases: list[dict], variant: str, rows: int, concurrency: int) -> dict:
    """The rounds of one variant and workload, averaged."""
    found = [
        c
        for c in cases
        if (c["variant"], c["rows_per_request"], c["concurrency"]) == (variant, rows, concurrency)
    ]
    keys = ("requests_per_second", "rows_per_second", "p50_ms", "p99_ms")
    return {k: round(sum(c[k] for c in found) / len(found), 2) for k in keys}


def _summary(results: dict) -> dict:
    cases = results["cases"]
    binary = mean_case(cases, "v2_binary", 100, 32)
    predict = mean_case(cases, "predict", 100, 32)
    one = [mean_case(cases, v, 1, 1)["p50_ms"] for v in ("v2_json", "v2_binary")]
    measured = {
        "v2_binary_100_rows_c32_rows_per_second": binary["rows_per_second"],
        "predict_100_rows_c32_rows_per_second": predict["rows_per_second"],
        "v2_binary_over_predict_100_rows": round(
            binary["rows_per_second"] / predict["rows_per_second"], 2
        ),
        "v2_1_row_c1_p50_ms": max(one),
    }
    met = {
        "v2_binary_100_rows_c32_rows_per_second": measured["v2_binary_100_rows_c32_rows_per_second"]
        >= TARGETS["v2_binary_100_rows_c32_rows_per_second"],
        "v2_binary_over_predict_100_rows": measured["v2_binary_over_predict_100_rows"]
        >= TARGETS["v2_binary_over_predict_100_rows"],
        "v2_1_row_c1_p50_ms": measured["v2_1_row_c1_p50_ms"] <= TARGETS["v2_1_row_c1_p50_ms"],
    }
    return {"measured": measured, "targets": TARGETS, "met": met}


def _row(c: dict) -> str:
    cpu = c.get("server_cpu_ms_per_request")
    return (
        f"{c['server'] + ' ' + c['variant']:<26} {c['round']:>2} {c['rows_per_request']:>5} "
        f"{c['concurrency']:>4} {c['requests_per_second']:>9.1f} {c['rows_per_second']:>10.1f} "
        f"{c['p50_ms']:>8.2f} {c['p99_ms']:>8.2f} {'-' if cpu is None else f'{cpu:.3f}':>8} "
        f"{c['errors']:>6}"
    )


def table(results: dict) -> str:
    head = (
        f"{'server variant':<26} {'rd':>2} {'rows':>5} {'conc':>4} {'req/s':>9} {'rows/s':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'cpu ms':>8} {'errors':>6}"
    )
    lines = [f"client: wrk, {results['cpus']} CPUs", head, "-" * len(head)]
    lines += [_row(c) for c in results["cases"]]
    lines += ["", "mean of the rounds:"]
    for rows, concurrency in WORKLOADS:
        for variant in VARIANTS:
            m = mean_case(results["cases"], variant, rows, concurrency)
            lines.append(
                f"  {variant:<10} {rows:>5} rows c={concurrency:<3}"
                f" {m['requests_per_second']:>9.1f} req/s {m['rows_per_second']:>10.1f} rows/s"
                f" p50 {m['p50_ms']:.2f} ms"
                f" p99 {m['p99_ms']:.2f} ms"
            )
    peer = results.get("peer") or {}
    lines.append("")
    if peer.get("cases"):
        lines.append(f"peer: {peer['version']} (V2 JSON, one input per feature, no logging)")
        lines += [_row(c) for c in peer["cases"]]
    else:
        lines.append(f"peer: not measured ({peer.get('skipped', 'unknown')})")
    lines.append("")
    lines += summary_lines(results["summary"])
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Benchmark the Open Inference Protocol.")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    run(parser.parse_args().out)
