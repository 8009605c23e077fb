"""Inference log on PostgreSQL: write capacity, and window reads partitioned vs unpartitioned.

    python -m bench --only log

- Capacity: rows/s sustained through ``InferenceLog.write`` by 1, 2 and 4 concurrent writers
  (threads, each with its own connection pool, as the service's workers each have one), each
  write a batch of 1, 16 or 256 one-row requests (the service writes one batch per model call).
- Windows: the newest 1,000 and 100,000 rows of a log of ``VIGIL_BENCH_LOG_ROWS`` rows (10
  million by default, in requests of ``VIGIL_BENCH_LOG_ROWS_PER_REQUEST`` rows, spread over 30
  days) read with ``InferenceLog.latest``, once from the day-partitioned table and once from
  the same rows in a plain table (schema ``0001_baseline``). Rows are made in the database with
  ``generate_series``; every table is dropped afterwards.

Needs PostgreSQL: ``VIGIL_BENCH_POSTGRES_URL`` (default the test database).
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from vigil.log import partitions as log_partitions
from vigil.log.format import dumps
from vigil.log.inference_log import InferenceLog, LogRecord
from vigil.log.prediction_ids import new_request_ids
from vigil.store import migrations

URL = os.environ.get("VIGIL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
LOG_ROWS = int(os.environ.get("VIGIL_BENCH_LOG_ROWS", "10000000"))
ROWS_PER_REQUEST = int(os.environ.get("VIGIL_BENCH_LOG_ROWS_PER_REQUEST", "10"))
SECONDS = float(os.environ.get("VIGIL_BENCH_LOG_SECONDS", "4"))
DAYS = 30
FEATURES = {f"f{i}": 0.5 + i for i in range(20)} | {"colour": "red", "city": "Lisbon"}


def _batch(n: int) -> list[LogRecord]:
    now = time.time()
    return [
        LogRecord(
            request_id=rid,
            model_version="vigil-model:bench",
            created_at=now,
            instances=[FEATURES],
            predictions=[1],
            probabilities={"0": [0.25], "1": [0.75]},
        )
        for rid in new_request_ids(n, now)
    ]


def _cell(prefix: str, writers: int, batch: int) -> dict:
    """``writers`` threads writing batches of ``batch`` requests for SECONDS."""
    logs = [InferenceLog(URL, prefix, timeout=10) for _ in range(writers)]
    counts = [0] * writers
    latencies: list[float] = []
    stop = time.monotonic() + SECONDS

    def write(i: int) -> None:
        while time.monotonic() < stop:
            records = _batch(batch)
            started = time.perf_counter()
            logs[i].write(records)
            latencies.append(time.perf_counter() - started)
            counts[i] += batch

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    for log in logs:
        log.close()
    latencies.sort()
    return {
        "writers": writers,
        "batch_rows": batch,
        "rows_per_second": round(sum(counts) / elapsed),
        "write_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "write_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
    }


def capacity(prefix: str) -> list[dict]:
    results = []
    for writers in (1, 2, 4):
        for batch in (1, 16, 256):
            cell = _cell(prefix, writers, batch)
            results.append(cell)
            print(
                f"  writers={writers} batch={batch:>3}: {cell['rows_per_second']:>8} rows/s"
                f"  p50 {cell['write_p50_ms']} ms  p99 {cell['write_p99_ms']} ms"
            )
    return results


def partition_days(log: InferenceLog) -> None:
    """Partitions for every day ``_fill`` spreads rows over (the log makes only recent ones)."""
    today = int(time.time() // log_partitions.DAY)
    with log.engine.begin() as conn:
        log_partitions.create(conn, log.table_prefix, list(range(today - DAYS - 1, today + 1)))


def _fill(log: InferenceLog, rows: int, per_request: int) -> float:
    """``rows`` rows in requests of ``per_request``, evenly over the last DAYS days; seconds."""
    requests = rows // per_request
    now = time.time()
    start, step = now - DAYS * 86_400, DAYS * 86_400 / requests
    instances = dumps({name: [value] * per_request for name, value in FEATURES.items()})
    predictions = dumps([1] * per_request)
    probabilities = dumps({"0": [0.25] * per_request, "1": [0.75] * per_request})
    # Typed parameters: psycopg sends small ints as int2, for which generate_series and the
    # arithmetic below have no single candidate.
    sql = sa.text(
        f'INSERT INTO "{log.requests.name}" (request_id, model_version, created_at, row_count, '
        "instances, predictions, probabilities) "
        "SELECT lpad(to_hex(((CAST(:start AS float8) + g * CAST(:step AS float8)) * 1000)"
        "::bigint), 12, '0') || substr(md5(g::text), 1, 20), 'vigil-model:bench', "
        "CAST(:start AS float8) + g * CAST(:step AS float8), CAST(:k AS integer), "
        "CAST(:inst AS text), CAST(:preds AS text), CAST(:probs AS text) "
        "FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g"
    )
    began = time.monotonic()
    chunk = 200_000
    for lo in range(0, requests, chunk):
        with log.engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
            conn.execute(
                sql,
                {
                    "start": start,
                    "step": step,
                    "k": per_request,
                    "inst": instances,
                    "preds": predictions,
                    "probs": probabilities,
                    "lo": lo,
                    "hi": min(requests, lo + chunk) - 1,
                },
            )
    with log.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            f'VACUUM ANALYZE "{log.requests.name}"'
        )
    return time.monotonic() - began


def windows(rows: int, per_request: int) -> list[dict]:
    results = []
    for layout in ("partitioned", "unpartitioned"):
        prefix = f"b{uuid.uuid4().hex[:8]}_"
        log = InferenceLog(URL, prefix, timeout=60)
        try:
            if layout == "partitioned":
                log.create_schema()
                partition_days(log)
            else:
                migrations.upgrade(log.engine, prefix, migrations.BASELINE)
                log.partitioned = False  # the same code on one plain table
            fill = _fill(log, rows, per_request)
            print(f"  {layout}: {rows:,} rows made in {fill:.0f} s")
            for n in (1_000, 100_000):
                times = []
                for _ in range(3):
                    started = time.perf_counter()
                    window = log.latest("vigil-model:bench", n, max_rows=100_000)
                    times.append(time.perf_counter() - started)
                assert window.total_rows == n, window.total_rows
                results.append(
                    {
                        "layout": layout,
                        "log_rows": rows,
                        "window_rows": n,
                        "read_seconds_median": round(statistics.median(times), 3),
                        "read_seconds_all": [round(t, 3) for t in times],
                    }
                )
                print(f"  {layout} window {n:>7,}: {statistics.median(times):.3f} s (median of 3)")
        finally:
            log.drop_schema()
            log.close()
    return results


def run(out: Path) -> dict:
    prefix = f"b{uuid.uuid4().hex[:8]}_"
    log = InferenceLog(URL, prefix, timeout=10)
    log.create_schema()
    try:
        print(f"log capacity on PostgreSQL ({SECONDS:g} s per cell, 1-row requests):")
        write = capacity(prefix)
    finally:
        log.drop_schema()
        log.close()
    print(f"window reads on a {LOG_ROWS:,}-row log ({ROWS_PER_REQUEST} rows per request):")
    read = windows(LOG_ROWS, ROWS_PER_REQUEST)
    result = {"capacity": write, "windows": read}
    (out / "log.json").write_text(json.dumps(result, indent=2))
    return result
