"""Retention of the shadow predictions: in short batches, as the requests' (one DELETE of
every aged row held SQLite's write lock for seconds and timed writers out)."""

from __future__ import annotations

import os
import time

import sqlalchemy as sa

from tests.vigil.log.test_inference_log import ContinuousWrites
from tests.vigil.log.test_inference_log import log as log  # the fixture: both back ends
from vigil.log.inference_log import InferenceLog
from vigil.log.prediction_ids import new_request_id
from vigil.log.shadow import ShadowLog, ShadowRecord


def shadow(at: float, rows: int = 2, version: str = "vigil-model:b") -> ShadowRecord:
    return ShadowRecord(new_request_id(at), version, at, [1] * rows, {"1": [0.5] * rows})


def test_prune_deletes_in_short_batches(log, monkeypatch):
    import vigil.log.inference_log as module

    monkeypatch.setattr(module, "_PRUNE_BATCH", 50)
    shadows = ShadowLog(log)
    shadows.write([shadow(100.0 + i) for i in range(230)] + [shadow(10_000.0)])
    shadows.write([shadow(100.0 + i, version="vigil-model:a") for i in range(10)])
    deletes: list[int] = []

    def after(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("DELETE") and "shadow" in statement:
            deletes.append(cursor.rowcount)

    sa.event.listen(log.engine, "after_cursor_execute", after)
    assert shadows.prune(5_000.0) == 2 * 240  # instances, not records
    assert shadows.count() == 2 and shadows.count("vigil-model:a") == 0
    assert max(deletes) <= 50 and sum(deletes) == 240 and len(deletes) >= 5
    assert shadows.prune(5_000.0) == 0


# Aged shadow records for the concurrent prune: enough that one DELETE of all of them holds
# the write lock past the writers' 1 s timeout on this machine.
AGED_RECORDS = int(os.environ.get("VIGIL_TEST_AGED_SHADOW_RECORDS", "200000"))


def test_writes_go_on_while_a_large_shadow_prune_runs_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    pruner, writer = InferenceLog(url, timeout=10), InferenceLog(url, timeout=1)
    pruner.create_schema()
    table = ShadowLog(pruner).table
    with pruner.engine.begin() as conn:
        for start in range(0, AGED_RECORDS, 50_000):
            conn.execute(
                table.insert(),
                [
                    {
                        "request_id": f"{i:032x}",
                        "model_version": "vigil-model:b",
                        "created_at": 1_000.0 + i,
                        "row_count": 1,
                        "predictions": "[1]",
                        "probabilities": '{"1":[0.5]}',
                    }  # fmt: skip
                    for i in range(start, min(start + 50_000, AGED_RECORDS))
                ],
            )
    with ContinuousWrites(writer, pause=0.005) as writes:
        started = time.monotonic()
        removed = ShadowLog(pruner).prune(time.time() - 86_400)
        pruned_in = time.monotonic() - started
    failures, latencies = writes.failures, writes.latencies
    print(
        f"\nshadow retention: {AGED_RECORDS} records pruned in {pruned_in:.2f} s; "
        f"{len(latencies)} writes, {len(failures)} failed, longest blocked "
        f"{max(latencies) * 1000:.0f} ms (timeout 1000 ms)"
    )
    assert removed == AGED_RECORDS
    assert failures == []
    assert max(latencies) < 1.0
    assert ShadowLog(pruner).count() == 0 and writer.count() == len(latencies)
    writer.close()
    pruner.close()
