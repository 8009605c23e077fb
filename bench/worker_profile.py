"""Where a service worker's time goes under load: ``python -m bench.worker_profile``.

Not a test, and not part of ``make bench``: a diagnostic for docs/performance.md. On the
default model (trained into a temporary VIGIL_HOME), two workers, ONNX, logging and metrics
on, wrk posts ``--rows``-row requests at ``--concurrency`` while py-spy samples one worker
(``py-spy record --format raw --nonblocking --threads``: the other worker serves meanwhile).
Prints the throughput during the profile, the share of the worker's samples by stage, and
the frames with the most samples of their own; the raw profile stays in ``--out``.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.service_bench import ROOT, _bodies, _load, _train

# A sample counts for the first stage one of whose frames it holds (checked in this order);
# the rest is the server and BentoML: the event loop, HTTP parsing and writing, routing, and
# BentoML's middleware (request metrics, timeout) on the way in and out.
STAGES = (
    ("parse the JSON body (precheck)", ("parse_json",)),
    ("validate and split by feature (precheck)", ("InstanceValidator.", "feedback_labels")),
    ("ONNX WorkerState's call", ("Session.run",)),
    ("feed the model", ("OnnxModel.feed", "batch_columns", "_JoinedColumns")),
    ("log: encode the records as JSON", ("_params",)),
    ("log: SQLite commit (fsync)", ("do_commit",)),
    ("log: SQL insert", ("InferenceLog.write",)),
    ("labels, probabilities, prediction ids", ("Predictor.", "_by_class", "prediction_ids")),
    ("encode the answer", ("dumps_bytes",)),
    ("batch thread between batches", ("_worker (concurrent",)),
    ("micro-batcher on the event loop", ("MicroBatcher.",)),
    ("V2: decode the request (JSON header, binary tensors)", ("decode_request",)),
    ("V2: check the numbers as arrays", ("numeric_instances",)),
    ("V2: outputs and their encoding", ("protocol_outputs", "encode_answer")),
    ("V2: the endpoint's own code", ("OpenInference._route", "OpenInference._infer")),
    ("the endpoint's own code", ("VigilService.predict",)),
    ("BentoML's endpoint (stand-in parse, headers)", ("api_endpoint",)),
    (
        "our middleware (key, admission, body read, disconnect watch)",
        (
            "BearerAuth.__call__",
            "Admission.__call__",
            "JsonApi.__call__",
            "LimitedRequest.run_watched",
        ),
    ),
)
REST = "uvloop, uvicorn, Starlette, BentoML's middleware"


def run(
    out_dir: Path, rows: int, concurrency: int, seconds: float, variant: str = "predict"
) -> dict:
    """``variant``: ``predict`` (JSON), or ``v2_json`` / ``v2_binary`` (the Open Inference
    Protocol, bodies as ``bench.protocol_bench`` sends them)."""
    from tests.conftest import free_port
    from tests.support.service import start_service

    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vigil-profile-"))
    raw = out_dir / f"worker-profile-{variant}-{rows}rows-c{concurrency}.txt"
    try:
        home = _train(work / "home")
        load_with = _loader(home, work, rows, variant)
        with start_service(home, free_port(), {"VIGIL_WORKERS": "2"}) as server:
            load_with(server.url, concurrency, 3.0)  # warm up
            spy = subprocess.Popen(
                [py_spy, "record", "--pid", str(server.worker_pids()[0]), "--rate", "200",
                 "--duration", str(int(seconds) + 1), "--format", "raw", "--nonblocking",
                 "--threads", "-o", str(raw)],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(0.5)
            load = load_with(server.url, concurrency, seconds)
            spy.wait(timeout=seconds + 60)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stages, frames, total = summarize(raw)
    rps = load["requests_per_second"]
    print(f"{rows}-row requests at c={concurrency}: {rps:.0f} req/s, {rps * rows:.0f} rows/s")
    print(f"while profiled; {total} samples of one worker, by stage:")
    for name, share in stages:
        print(f"  {share:6.1%}  {name}")
    print("frames with the most samples of their own:")
    for name, share in frames:
        print(f"  {share:6.1%}  {name}")
    print(f"raw profile: {raw}")
    return {"load": load, "stages": stages, "frames": frames, "samples": total}


def _loader(home: Path, work: Path, rows: int, variant: str):
    """``load(url, concurrency, seconds)`` posting ``variant``'s ``rows``-row body."""
    if variant == "predict":
        body = _bodies(home, work)[rows] if rows in (1, 100) else None
        if body is None:
            raise SystemExit("--rows is 1 or 100 (the benchmark's bodies)")
        return lambda url, concurrency, seconds: _load(url, body, concurrency, seconds, work)
    from bench import protocol_bench

    frame = protocol_bench._frames(home).get(rows)
    if frame is None:
        raise SystemExit("--rows is 1, 100 or 1000 (the protocol benchmark's bodies)")
    spec = protocol_bench._bodies(frame, work)[variant]
    return lambda url, concurrency, seconds: protocol_bench._wrk(
        f"{url}{protocol_bench.INFER}", spec, concurrency, seconds, work
    )


def summarize(raw: Path, top: int = 15) -> tuple[list, list, int]:
    """Shares of the samples by stage, and the ``top`` frames by samples of their own."""
    stages: collections.Counter[str] = collections.Counter()
    frames: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        names = [_short(frame) for frame in stack.split(";")[1:]]  # [0] is the thread
        n = int(count)
        total += n
        frames[names[-1] if names else "?"] += n
        stage = next((s for s, keys in STAGES if any(k in f for f in names for k in keys)), REST)
        stages[stage] += n
    share = [(name, n / total) for name, n in stages.most_common()]
    return share, [(name, n / total) for name, n in frames.most_common(top)], total


def _short(frame: str) -> str:
    """``parse_json (service/errors.py:240)``, ``Runner.run (asyncio/runners.py:118)``."""
    return _PREFIX.sub("(", frame)


_PREFIX = re.compile(
    r"\((?:[^()]*?/site-packages/|[^()]*?/lib/python3\.\d+/|" + re.escape(f"{ROOT}/") + ")"
)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Profile a service worker under load.")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--variant", choices=("predict", "v2_json", "v2_binary"), default="predict")
    args = parser.parse_args()
    run(args.out, args.rows, args.concurrency, args.seconds, args.variant)
