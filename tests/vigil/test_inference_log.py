"""The inference log on SQLite and PostgreSQL through the same code."""

from __future__ import annotations

import sqlite3
import time
import uuid

import pytest

from vigil.inference_log import InferenceLog, InferenceLogError, LogRow


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def log(request, tmp_path):
    if request.param == "sqlite":
        store = InferenceLog(f"sqlite:///{tmp_path / 'log.sqlite3'}", timeout=0.5)
    else:
        url, prefix = request.getfixturevalue("postgres_url")
        store = InferenceLog(url, prefix, timeout=1)
    store.create_schema()
    yield store
    store.close()


def rows(n: int, version: str = "vigil-model:a", start: float = 1_000.0, **inputs) -> list[LogRow]:
    return [
        LogRow(
            prediction_id=str(uuid.uuid4()),
            request_id="req",
            model_version=version,
            created_at=start + i,
            inputs={"x": float(i), "colour": "red", "gap": None, **inputs},
            prediction=i % 2,
            probabilities={"0": 0.25, "1": 0.75},
        )
        for i in range(n)
    ]


def test_write_and_read_latest_window(log):
    log.write(rows(30, "vigil-model:a") + rows(5, "vigil-model:b", start=5_000))
    assert log.count() == 35 and log.count("vigil-model:b") == 5
    window = log.latest("vigil-model:a", 10)
    assert window.total_rows == 10 and not window.sampled
    assert window.frame["x"].tolist() == [float(i) for i in range(20, 30)]  # newest, oldest first
    assert window.frame["gap"].isna().all()
    assert set(window.frame.columns) >= {"x", "colour", "prediction_id", "created_at", "prediction"}


def test_window_by_time_and_only_one_version(log):
    log.write(
        rows(10, "vigil-model:a") + rows(10, "vigil-model:b") + rows(10, "vigil-model:a", 2_000)
    )
    window = log.latest("vigil-model:a", 100, since=1_500.0)
    assert window.total_rows == 10
    assert window.frame["created_at"].min() >= 2_000


def test_big_window_is_sampled_and_says_so(log):
    log.write(rows(500))
    window = log.latest("vigil-model:a", 400, max_rows=50)
    assert window.sampled and window.total_rows == 400 and len(window.frame) == 50
    assert window.frame["x"].min() >= 100  # drawn only from the newest 400
    assert window.frame["created_at"].is_monotonic_increasing


def test_feedback_joins_labels_and_reports_unknown_ids(log):
    logged = rows(3)
    log.write(logged)
    accepted, unknown = log.add_feedback(
        [(logged[0].prediction_id, 1), ("missing", 0), (logged[1].prediction_id, 0)]
    )
    assert accepted == 2 and unknown == ["missing"]
    log.add_feedback([(logged[0].prediction_id, 0)])  # a repeated id replaces the label
    labeled = log.labeled("vigil-model:a", 10)
    assert dict(zip(labeled["prediction_id"], labeled["label"], strict=True)) == {
        logged[0].prediction_id: 0,
        logged[1].prediction_id: 0,
    }
    assert labeled["probabilities"].iloc[0] == {"0": 0.25, "1": 0.75}


def test_prune_removes_old_rows_and_their_labels(log):
    old, new = rows(5, start=100), rows(5, start=10_000)
    log.write(old + new)
    log.add_feedback([(old[0].prediction_id, 1), (new[0].prediction_id, 1)])
    assert log.prune(older_than=5_000) == 5
    assert log.count() == 5
    assert log.labeled("vigil-model:a", 10)["prediction_id"].tolist() == [new[0].prediction_id]


def test_duplicate_prediction_id_fails_the_whole_batch(log):
    batch = rows(3)
    log.write(batch[:1])
    with pytest.raises(InferenceLogError):
        log.write(batch)
    assert log.count() == 1


def test_locked_sqlite_store_raises_instead_of_hanging(tmp_path):
    path = tmp_path / "log.sqlite3"
    store = InferenceLog(f"sqlite:///{path}", timeout=0.3)
    store.create_schema()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(InferenceLogError, match="locked"):
            store.write(rows(1))
        assert time.monotonic() - started < 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.write(rows(1))
    assert store.count() == 1


def test_unreachable_store_raises():
    store = InferenceLog("postgresql://nobody@127.0.0.1:1/none", timeout=1)
    with pytest.raises(InferenceLogError):
        store.count()
