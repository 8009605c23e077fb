"""The inference log on SQLite and PostgreSQL through the same code."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa

from vigil.log.inference_log import InferenceLog, InferenceLogError, LogRecord
from vigil.log.prediction_ids import new_request_id, prediction_id


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


def record(
    n: int, version: str = "vigil-model:a", at: float = 1_000.0, first: int = 0, **inputs
) -> LogRecord:
    """A request of ``n`` instances whose ``x`` counts up from ``first``."""
    return LogRecord(
        request_id=new_request_id(at),
        model_version=version,
        created_at=at,
        instances=[
            {"x": float(first + i), "colour": "red", "gap": None, **inputs} for i in range(n)
        ],
        predictions=[(first + i) % 2 for i in range(n)],
        probabilities={"0": [0.25] * n, "1": [0.75] * n},
    )


def requests(sizes: list[int], version: str = "vigil-model:a", at: float = 1_000.0):
    """Consecutive requests (one second apart) whose ``x`` values count up across them."""
    out, first = [], 0
    for i, n in enumerate(sizes):
        out.append(record(n, version, at + i, first))
        first += n
    return out


def test_write_and_read_latest_window(log):
    log.write(requests([10, 10, 10]) + [record(5, "vigil-model:b", 5_000)])
    assert log.count() == 35 and log.count("vigil-model:b") == 5
    window = log.latest("vigil-model:a", 10)
    assert window.total_rows == 10 and not window.sampled
    assert window.frame["x"].tolist() == [float(i) for i in range(20, 30)]  # newest, oldest first
    assert window.frame["gap"].isna().all()
    assert set(window.frame.columns) >= {"x", "colour", "prediction_id", "created_at", "prediction"}
    assert window.frame["prediction"].tolist() == [i % 2 for i in range(20, 30)]


def test_a_window_may_cut_a_request_keeping_its_newest_rows(log):
    older, newer = requests([100, 100])
    log.write([older, newer])
    window = log.latest("vigil-model:a", 150)
    assert window.total_rows == 150 and len(window.frame) == 150
    assert window.frame["x"].tolist() == [float(i) for i in range(50, 200)]
    ids = older.prediction_ids[50:] + newer.prediction_ids
    assert window.frame["prediction_id"].tolist() == ids
    assert window.frame["created_at"].tolist() == [older.created_at] * 50 + [newer.created_at] * 100
    # Fewer rows than asked: all of them.
    assert log.latest("vigil-model:a", 1_000).total_rows == 200


def test_window_by_time_and_only_one_version(log):
    log.write(
        [record(10, "vigil-model:a"), record(10, "vigil-model:b"), record(10, "vigil-model:a", 2e3)]
    )
    window = log.latest("vigil-model:a", 100, since=1_500.0)
    assert window.total_rows == 10
    assert window.frame["created_at"].min() >= 2_000
    assert log.latest("vigil-model:c", 100).frame.empty


def test_big_window_is_sampled_and_says_so(log):
    log.write(requests([1] * 50 + [50] * 9))  # 500 rows: small requests, then bigger ones
    window = log.latest("vigil-model:a", 400, max_rows=50)
    assert window.sampled and window.total_rows == 400 and len(window.frame) == 50
    assert window.frame["x"].min() >= 100  # drawn only from the newest 400
    assert window.frame["x"].is_monotonic_increasing  # oldest first
    assert window.frame["prediction_id"].is_unique
    assert window.frame["created_at"].is_monotonic_increasing
    again = log.latest("vigil-model:a", 400, max_rows=50)
    assert again.frame["x"].tolist() == window.frame["x"].tolist()  # seeded: reproducible


def test_prediction_ids_are_the_request_id_and_a_position(log):
    logged = record(3)
    log.write([logged])
    assert logged.prediction_ids == [prediction_id(logged.request_id, i) for i in range(3)]
    assert [i[:32] for i in logged.prediction_ids] == [logged.request_id] * 3
    assert [i[32:] for i in logged.prediction_ids] == ["0000", "0001", "0002"]
    assert log.prediction_ids() == set(logged.prediction_ids)


def test_feedback_joins_labels_and_reports_unknown_ids(log):
    logged = record(3)
    log.write([logged])
    ids = logged.prediction_ids
    past_the_end = prediction_id(logged.request_id, 3)
    no_request = prediction_id(new_request_id(), 0)
    malformed = ["missing", ids[0].upper(), ids[0] + "0", ids[0][:-1] + "g", " " + ids[0][1:]]
    accepted, unknown = log.add_feedback(
        [(ids[0], 1), (past_the_end, 0), (no_request, 1), (ids[1], 0)]
        + [(bad, 1) for bad in malformed]
    )
    assert accepted == 2 and unknown == [past_the_end, no_request, *malformed]
    log.add_feedback([(ids[0], 0)])  # a repeated id replaces the label
    labeled = log.labeled("vigil-model:a", 10)
    assert dict(zip(labeled["prediction_id"], labeled["label"], strict=True)) == {
        ids[0]: 0,
        ids[1]: 0,
    }
    assert labeled["x"].tolist() == [0.0, 1.0]
    assert labeled["prediction"].tolist() == [0, 1]
    assert labeled["probabilities"].iloc[0] == {"0": 0.25, "1": 0.75}
    assert set(labeled["model_version"]) == {"vigil-model:a"}
    assert log.labeled_count("vigil-model:a") == 2 and log.labeled_count("vigil-model:b") == 0


def test_labeled_reads_the_newest_labels_of_one_or_every_version(log):
    a1, b, a2 = record(4, at=1_000), record(4, "vigil-model:b", 2_000), record(4, at=3_000, first=4)
    log.write([a1, b, a2])
    log.add_feedback(
        [(a1.prediction_ids[1], 1), (b.prediction_ids[0], 0)]
        + [(pid, 1) for pid in a2.prediction_ids[1:]]
    )
    newest = log.labeled("vigil-model:a", 2)
    assert newest["prediction_id"].tolist() == a2.prediction_ids[2:]  # oldest first
    every = log.labeled(None, 10)
    assert every["prediction_id"].tolist() == (
        [a1.prediction_ids[1], b.prediction_ids[0]] + a2.prediction_ids[1:]
    )
    assert (
        every["model_version"].tolist()
        == ["vigil-model:a", "vigil-model:b"] + ["vigil-model:a"] * 3
    )
    assert every["x"].tolist() == [1.0, 0.0, 5.0, 6.0, 7.0]


def test_prune_removes_old_requests_and_their_labels(log):
    old, new = record(5, at=100), record(4, at=10_000)
    log.write([old, new])
    log.add_feedback([(old.prediction_ids[0], 1), (new.prediction_ids[0], 1)])
    assert log.prune(older_than=5_000) == 5  # predictions, not requests
    assert log.count() == 4
    assert log.labeled("vigil-model:a", 10)["prediction_id"].tolist() == [new.prediction_ids[0]]
    assert log.add_feedback([(old.prediction_ids[1], 1)]) == (0, [old.prediction_ids[1]])
    assert log.prune(older_than=5_000) == 0


def test_instances_with_different_keys_are_logged_with_gaps(log):
    logged = LogRecord(
        request_id=new_request_id(),
        model_version="vigil-model:a",
        created_at=time.time(),
        instances=[{"x": 1.0, "colour": "red"}, {"x": 2.0}, {"colour": "blue", "y": 3}],
        predictions=[0, 1, 0],
        probabilities={"0": [1.0, 0.0, 1.0], "1": [0.0, 1.0, 0.0]},
    )
    log.write([logged])
    frame = log.latest("vigil-model:a", 10).frame
    assert frame["x"].tolist()[:2] == [1.0, 2.0] and frame["x"].isna().tolist()[2]
    assert frame["colour"].tolist() == ["red", None, "blue"]


def test_instances_may_be_given_by_feature(log):
    by_feature = LogRecord(
        request_id=new_request_id(),
        model_version="vigil-model:a",
        created_at=time.time(),
        instances={"x": [1.0, 2.0], "colour": ["red", None]},
        predictions=[0, 1],
        probabilities={"0": [1.0, 0.0], "1": [0.0, 1.0]},
    )
    log.write([by_feature])
    frame = log.latest("vigil-model:a", 10).frame
    assert frame["x"].tolist() == [1.0, 2.0] and frame["colour"].tolist() == ["red", None]


def test_malformed_records_are_refused_before_anything_is_written(log):
    good = record(2)
    with pytest.raises(ValueError, match="request id"):
        log.write([good, LogRecord("req-1", "v", 0.0, [{"x": 1}], [0], {"0": [1.0]})])
    short = LogRecord(new_request_id(), "v", 0.0, [{"x": 1}, {"x": 2}], [0], {"0": [1.0]})
    with pytest.raises(ValueError, match="differ in length"):
        log.write([short])
    with pytest.raises(ValueError):
        log.write([LogRecord(new_request_id(), "v", 0.0, [{"x": float("nan")}], [0], {})])
    assert log.count() == 0


def test_duplicate_request_id_fails_the_whole_batch(log):
    first = record(2)
    log.write([first])
    with pytest.raises(InferenceLogError):
        log.write([record(3), first])
    assert log.count() == 2


def test_a_bulk_write_is_sent_in_slices_but_is_one_transaction(log):
    bulk = requests([20_000] * 4)  # more than one slice of _WRITE_ROWS
    with pytest.raises(InferenceLogError):
        log.write([*bulk, record(1), bulk[0]])  # the last one fails: nothing is written
    assert log.count() == 0
    log.write(bulk)
    assert log.count() == 80_000
    window = log.latest("vigil-model:a", 30_000, max_rows=1_000)
    assert window.sampled and len(window.frame) == 1_000 and window.frame["x"].min() >= 50_000


def test_locked_sqlite_store_raises_instead_of_hanging(tmp_path):
    path = tmp_path / "log.sqlite3"
    store = InferenceLog(f"sqlite:///{path}", timeout=0.3)
    store.create_schema()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(InferenceLogError, match="locked"):
            store.write([record(1)])
        assert time.monotonic() - started < 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.write([record(1)])
    assert store.count() == 1


def test_a_new_sqlite_file_locked_by_another_connection_is_waited_for(tmp_path):
    # Switching a new file to WAL fails at once, busy timeout or not, while another
    # connection holds its write lock: processes starting together on an empty log did so.
    path = tmp_path / "log.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE unrelated (x)")
    release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        store = InferenceLog(f"sqlite:///{path}", timeout=5)
        store.create_schema()
        store.write([record(1)])
        assert store.count() == 1
        with sqlite3.connect(path) as fresh:
            assert fresh.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        store.close()
    finally:
        release.join()  # never COMMIT on a closed connection
        holder.close()


def test_table_prefix_is_respected(tmp_path):
    store = InferenceLog(f"sqlite:///{tmp_path / 'log.sqlite3'}", "other_")
    store.create_schema()
    store.write([record(2)])
    with sqlite3.connect(tmp_path / "log.sqlite3") as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    assert {"other_requests", "other_feedback"} <= tables
    assert not any(name.startswith("vigil_") for name in tables)
    store.close()


def test_unreachable_store_raises():
    store = InferenceLog("postgresql://nobody@127.0.0.1:1/none", timeout=1)
    with pytest.raises(InferenceLogError):
        store.count()


def test_prune_deletes_in_short_batches(log, monkeypatch):
    """Each retention transaction deletes a bounded batch: one DELETE of everything old would
    hold SQLite's write lock past the busy timeout that writers wait for."""
    import vigil.log.inference_log as module

    monkeypatch.setattr(module, "_PRUNE_BATCH", 50)
    log.write([record(1, at=100 + i) for i in range(230)] + [record(1, at=10_000)])
    deletes: list[int] = []

    def after(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("DELETE") and "requests" in statement:
            deletes.append(cursor.rowcount)

    sa.event.listen(log.engine, "after_cursor_execute", after)
    commits: list[int] = []
    sa.event.listen(log.engine, "commit", lambda conn: commits.append(1))
    assert log.prune(older_than=5_000) == 230
    assert log.count() == 1
    assert max(deletes) <= 50 and sum(deletes) == 230
    assert len(commits) >= 5


def test_retention_is_on_by_default():
    from vigil.settings import Settings

    assert Settings(_env_file=None).log_retention_days == 30


@pytest.mark.postgres
def test_postgres_connections_time_out_and_keep_alive(postgres_url):
    url, prefix = postgres_url
    store = InferenceLog(url, prefix, timeout=1)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1s"
        info = conn.connection.dbapi_connection.info
        params = info.get_parameters()
        assert params["keepalives"] == "1"
        assert int(params["keepalives_idle"]) >= 1 and int(params["keepalives_count"]) == 3
        assert int(params["keepalives_interval"]) >= 1 and int(params["connect_timeout"]) >= 1
        assert int(params["tcp_user_timeout"]) > 0
    started = time.monotonic()
    with pytest.raises(InferenceLogError), store._reading() as conn:
        conn.exec_driver_sql("SELECT pg_sleep(10)")
    assert time.monotonic() - started < 5
    store.close()


def _day_requests(days: int, per_day: int, now: float) -> list[LogRecord]:
    return [
        record(2, at=now - (days - 1 - day) * 86_400 + i, first=2 * (day * per_day + i))
        for day in range(days)
        for i in range(per_day)
    ]


@pytest.mark.postgres
def test_postgres_window_reads_only_recent_partitions(postgres_url):
    from vigil.log import partitions as log_partitions

    url, prefix = postgres_url
    store = InferenceLog(url, prefix, timeout=5)
    now = time.time() - 60
    with store.engine.begin() as conn:  # day partitions for the last ten days
        today = int(now // 86_400)
        log_partitions.create(conn, prefix, list(range(today - 9, today + 1)))
    store.write(_day_requests(10, 20, now))
    window = store.latest("vigil-model:a", 30)
    assert window.frame["x"].tolist() == [float(i) for i in range(370, 400)]
    # The query a window's planning runs, as EXPLAIN sees it: only today's partitions (and the
    # default and those ahead, empty) are scanned.
    r = store.requests
    stmt = (
        sa.select(r.c.id, r.c.row_count)
        .where(r.c.model_version == "vigil-model:a", r.c.created_at >= now - 86_400)
        .order_by(r.c.id.desc())
        .limit(1000)
    )
    with store.engine.connect() as conn:
        compiled = stmt.compile(conn, compile_kwargs={"literal_binds": True})
        plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {compiled}").scalars())
        scanned = {p.name for p in log_partitions.partitions(conn, prefix) if p.name in plan}
    old = {log_partitions.day_partition(prefix, today - k).name for k in range(2, 10)}
    assert scanned and not scanned & old, plan
    # The whole history is still one window away.
    assert store.latest("vigil-model:a", 10_000).total_rows == 400
    store.close()


@pytest.mark.postgres
def test_postgres_retention_drops_whole_partitions(postgres_url):
    from vigil.log import partitions as log_partitions

    url, prefix = postgres_url
    store = InferenceLog(url, prefix, timeout=5)
    now = time.time() - 60
    today = int(now // 86_400)
    with store.engine.begin() as conn:
        log_partitions.create(conn, prefix, list(range(today - 4, today + 1)))
    logged = _day_requests(5, 10, now)
    store.write(logged)
    store.add_feedback([(logged[0].prediction_ids[0], 1), (logged[-1].prediction_ids[0], 0)])
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    # Three whole days are older than the cutoff: dropped, not deleted.
    assert store.prune(older_than=(today - 1) * 86_400) == 60
    assert sum("DROP TABLE" in s for s in statements) == 3
    with store.engine.connect() as conn:
        names = {p.name for p in log_partitions.partitions(conn, prefix)}
    assert log_partitions.day_partition(prefix, today - 2).name not in names
    assert log_partitions.day_partition(prefix, today - 1).name in names
    assert store.count() == 40
    assert store.labeled(None, 10)["prediction_id"].tolist() == [logged[-1].prediction_ids[0]]
    store.close()


class ContinuousWrites:
    """Within the ``with``: one small write after another to ``writer`` in a thread, each
    one's latency and failure recorded (writes start 0.3 s before the body, end 0.3 s after)."""

    def __init__(self, writer: InferenceLog, pause: float = 0.01):
        self.writer, self.pause = writer, pause
        self.failures: list[str] = []
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.writer.write([record(1, at=time.time())])
            except InferenceLogError as exc:
                self.failures.append(str(exc))
            self.latencies.append(time.monotonic() - started)
            time.sleep(self.pause)

    def __enter__(self) -> ContinuousWrites:
        self._thread.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.3)
        self._stop.set()
        self._thread.join(30)


@pytest.mark.postgres
def test_postgres_retention_keeps_writes_going_while_it_drops_days(postgres_url):
    """Several days fall due while the monitor holds a long read on the log: each drop waits
    for its lock only briefly, so writes never queue behind it past their timeout."""
    from vigil.log import partitions as log_partitions

    url, prefix = postgres_url
    pruner = InferenceLog(url, prefix, timeout=10)
    writer = InferenceLog(url, prefix, timeout=1)
    now = time.time() - 60
    today = int(now // 86_400)
    with pruner.engine.begin() as conn:
        log_partitions.create(conn, prefix, list(range(today - 6, today + 1)))
    logged = _day_requests(7, 20, now)
    pruner.write(logged)
    pruner.add_feedback([(r.prediction_ids[0], 1) for r in logged])

    def long_read():  # a window read that holds the parent for 2.5 s
        with pruner.engine.begin() as conn:
            conn.exec_driver_sql(f'SELECT count(*) FROM "{prefix}requests"')
            time.sleep(2.5)

    reader = threading.Thread(target=long_read)
    reader.start()
    with ContinuousWrites(writer) as writes:
        started = time.monotonic()
        removed = pruner.prune(older_than=(today - 1) * 86_400)
        pruned_in = time.monotonic() - started
    reader.join(10)
    failures, latencies = writes.failures, writes.latencies
    print(
        f"\nretention: 5 days dropped in {pruned_in:.2f} s; {len(latencies)} writes, "
        f"{len(failures)} failed, slowest {max(latencies) * 1000:.0f} ms (timeout 1000 ms)"
    )
    assert removed == 5 * 20 * 2
    assert failures == []
    assert max(latencies) < 1.0
    with pruner.engine.connect() as conn:
        names = {p.name for p in log_partitions.partitions(conn, prefix)}
    assert not names & {log_partitions.day_partition(prefix, today - k).name for k in range(2, 7)}
    writer.close()
    pruner.close()


@pytest.mark.postgres
def test_postgres_a_label_sent_while_its_day_is_dropped_leaves_no_orphan(postgres_url):
    """A label for a request of a day being dropped arrives between the drop's label DELETE
    and its DROP TABLE: it is either refused (its request is gone) or deleted with the day;
    never kept without its request."""
    from vigil.log import partitions as log_partitions

    url, prefix = postgres_url
    pruner, labeller = InferenceLog(url, prefix, timeout=10), InferenceLog(url, prefix, timeout=10)
    now = time.time() - 60
    today = int(now // 86_400)
    with pruner.engine.begin() as conn:
        log_partitions.create(conn, prefix, list(range(today - 3, today + 1)))
    old = record(2, at=(today - 3) * 86_400 + 100.0)
    pruner.write([old, record(1, at=now)])
    outcome: dict = {}
    sent = threading.Thread(
        target=lambda: outcome.update(result=labeller.add_feedback([(old.prediction_ids[0], 1)]))
    )

    def before(conn, cursor, statement, *args):
        if statement.startswith("DROP TABLE") and not sent.is_alive() and not outcome:
            sent.start()
            sent.join(2)  # the label's transaction commits now, unless the drop holds the day

    sa.event.listen(pruner.engine, "before_cursor_execute", before)
    assert pruner.prune(older_than=(today - 1) * 86_400) == 2
    sent.join(30)
    accepted, unknown = outcome["result"]
    feedback, requests = pruner.feedback, pruner.requests
    with pruner.engine.connect() as conn:
        orphans = conn.scalar(
            sa.select(sa.func.count())
            .select_from(feedback)
            .where(~feedback.c.request_id.in_(sa.select(requests.c.request_id)))
        )
    assert orphans == 0, f"label kept without its request (accepted {accepted})"
    # Refused, or (when the drop yielded its lock to the label and tried again) accepted and
    # deleted with its day, as every label of a request retention deletes.
    assert (accepted, unknown) in ((0, [old.prediction_ids[0]]), (1, []))
    pruner.close()
    labeller.close()
