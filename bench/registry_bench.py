"""Benchmark of the model registry: ``python -m bench.registry_bench [--out DIR]``.

How long a cold replica (empty VIGIL_HOME) takes to get the production model out of
PostgreSQL: artifacts fetched, verified by sha256, cached, and the pipeline unpickled; against
the same from a warm local cache. Measured in one process, so the database connection is
already open (a new process adds its connect and imports, not counted here). Needs
PostgreSQL at ``VIGIL_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); uses a fresh table prefix, dropped after.
Results go to ``<out>/registry.json``.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import typer

RUNS = 7
POSTGRES_URL = os.environ.get(
    "VIGIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _fetch(settings) -> float:
    from vigil.registry.store import Registry

    began = time.perf_counter()
    bundle = Registry(settings).load_production()
    _ = bundle.pipeline, bundle.reference
    return time.perf_counter() - began


def run(out_dir: Path) -> dict:
    from training.data import load
    from training.train import train
    from vigil.registry.schema import drop_registry_schema
    from vigil.registry.store import Registry
    from vigil.settings import get_settings

    prefix = f"b{uuid.uuid4().hex[:10]}_"
    with tempfile.TemporaryDirectory(prefix="vigil-bench-registry-") as tmp:
        root = Path(tmp)
        settings = get_settings(
            home=root / "trainer", database_url=POSTGRES_URL, table_prefix=prefix
        )
        try:
            outcome = train(settings, load(None, None), seed=42, promote=True)
            record = Registry(settings).model(outcome.model_tag)
            size = sum(a["size"] for a in record.artifacts.values())
            cold = [_fetch(get_settings(home=root / f"cold-{i}", database_url=POSTGRES_URL,
                                        table_prefix=prefix)) for i in range(RUNS)]  # fmt: skip
            warm_settings = get_settings(home=root / "cold-0", database_url=POSTGRES_URL,
                                         table_prefix=prefix)  # fmt: skip
            warm = [_fetch(warm_settings) for _ in range(RUNS)]
        finally:
            drop_registry_schema(Registry(settings).engine, prefix)
    result = {
        "artifact_bytes": size,
        "cold_fetch_ms_median": round(statistics.median(cold) * 1000, 1),
        "cold_fetch_ms_max": round(max(cold) * 1000, 1),
        "warm_cache_ms_median": round(statistics.median(warm) * 1000, 1),
        "runs": RUNS,
    }
    typer.echo(
        f"cold replica model fetch from PostgreSQL ({size / 1e6:.2f} MB of artifacts, "
        f"verify + unpickle): median {result['cold_fetch_ms_median']} ms, "
        f"max {result['cold_fetch_ms_max']} ms; warm cache {result['warm_cache_ms_median']} ms"
    )
    (out_dir / "registry.json").write_text(json.dumps(result, indent=2))
    return result


def main(out: Path = Path("bench-results")) -> None:
    out.mkdir(parents=True, exist_ok=True)
    run(out)


if __name__ == "__main__":
    typer.run(main)
