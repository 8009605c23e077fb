"""Benchmark of a shadow's cost: ``python -m bench --only candidate``.

Not a test: it measures and prints. The default model as production and a second one (another
seed) as the candidate, served by two workers; wrk (or the Python client) at concurrency 32
with 1-row requests, shadow off and on in turn, A B A B (each measured after a warm-up), so
that a drift of the machine's load shows rather than biases one side. Reported: requests/s
and p99 per round, the on/off ratios of their medians against the targets, and the share of
answered rows the shadow scored at that load (the rest skipped: vigil_shadow_skipped_rows).
Results go to ``<out>/candidate.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import summary_lines
from bench.service_bench import ROOT, WARMUP_SECONDS, _bodies, _load, _train

CONCURRENCY = 32
MEASURE_SECONDS = 10.0
ROUNDS = ("off", "on", "off", "on")
TARGETS = {"throughput_on_over_off": 0.8, "p99_on_over_off": 1.25}
WORKERS = 2


def run(out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-candidate-"))
    try:
        home = _train(work / "home")
        candidate = _candidate(home)
        body = _bodies(home, work)[1]
        results: dict[str, Any] = {
            "client": "wrk" if shutil.which("wrk") else "python-asyncio",
            "concurrency": CONCURRENCY,
            "rows_per_request": 1,
            "measure_seconds": MEASURE_SECONDS,
            "rounds": _rounds(home, candidate, body, work),
        }
        results["summary"] = _summary(results["rounds"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (out_dir / "candidate.json").write_text(json.dumps(results, indent=2))
    print("\n".join(summary_lines(results["summary"])))
    return results


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIL_", "BENTOML_"))}
    env.update({"VIGIL_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true", "VIGIL_ENV_FILE": ""})
    return env


def _candidate(home: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "training.train", "--seed", "7"],
        cwd=ROOT, env=_env(home), check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])["model_tag"]


def _shadow(home: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "training.models", "shadow", *args],
        cwd=ROOT, env=_env(home), check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def _counters(url: str) -> dict[str, float]:
    from tests.support.prom import scrape, total

    text = scrape(url)
    return {
        name: total(text, f"vigil_{name}_total")
        for name in ("shadow_rows", "shadow_skipped_rows", "inference_log_rows")
    }


def _following(url: str, tag: str | None, timeout: float = 30.0) -> float:
    """Seconds until every worker runs ``tag`` as a shadow (None: none)."""
    from tests.support.prom import scrape, total

    began = time.monotonic()
    while time.monotonic() - began < timeout:
        text = scrape(url)
        running = total(text, "vigil_candidate_info", mode="shadow")
        want = WORKERS if tag else 0
        if running == want and (tag is None or total(text, "vigil_candidate_info",
                                                     candidate_version=tag) == want):  # fmt: skip
            return time.monotonic() - began
        time.sleep(0.1)
    raise RuntimeError(f"workers did not follow the shadow ({tag}) in {timeout} s")


def _rounds(home: Path, candidate: str, body: Path, work: Path) -> list[dict]:
    from tests.conftest import free_port
    from tests.support.service import start_service

    rounds = []
    with start_service(home, free_port(), {"VIGIL_WORKERS": str(WORKERS)}) as server:
        for mode in ROUNDS:
            if mode == "on":
                _shadow(home, candidate)
                followed = _following(server.url, candidate)
            else:
                if rounds:
                    _shadow(home, "--stop")
                followed = _following(server.url, None)
            _load(server.url, body, CONCURRENCY, WARMUP_SECONDS, work)
            before = _counters(server.url)
            measured = _load(server.url, body, CONCURRENCY, MEASURE_SECONDS, work)
            after = _counters(server.url)
            delta = {k: after[k] - before[k] for k in after}
            offered = delta["shadow_rows"] + delta["shadow_skipped_rows"]
            measured.update(
                shadow=mode,
                followed_seconds=round(followed, 2),
                shadow_scored_rows=delta["shadow_rows"],
                shadow_skipped_rows=delta["shadow_skipped_rows"],
                shadow_scored_share=round(delta["shadow_rows"] / offered, 4) if offered else None,
            )
            rounds.append(measured)
            print(
                f"  shadow {mode:<3} {measured['requests_per_second']:>8} req/s  "
                f"p99 {measured['p99_ms']:>7} ms  errors {measured['errors']}  "
                f"scored {measured['shadow_scored_share']}",
                flush=True,
            )
    return rounds


def _summary(rounds: list[dict]) -> dict:
    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in rounds if r["shadow"] == mode)

    measured = {
        "off_requests_per_second": median("off", "requests_per_second"),
        "on_requests_per_second": median("on", "requests_per_second"),
        "off_p99_ms": median("off", "p99_ms"),
        "on_p99_ms": median("on", "p99_ms"),
        "shadow_scored_share": median("on", "shadow_scored_share"),
    }
    measured["throughput_on_over_off"] = round(
        measured["on_requests_per_second"] / measured["off_requests_per_second"], 3
    )
    measured["p99_on_over_off"] = round(measured["on_p99_ms"] / measured["off_p99_ms"], 3)
    met = {
        "throughput_on_over_off": measured["throughput_on_over_off"]
        >= TARGETS["throughput_on_over_off"],
        "p99_on_over_off": measured["p99_on_over_off"] <= TARGETS["p99_on_over_off"],
    }
    return {"measured": measured, "targets": TARGETS, "met": met}


if __name__ == "__main__":
    run(Path(sys.argv[1] if len(sys.argv) > 1 else "bench-results"))
