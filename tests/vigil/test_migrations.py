"""The inference log's schema versions (vigil.migrations, python -m vigil.db) on SQLite and
PostgreSQL: a fresh database, one made by Vigil d8d9393 with data in it, an older, a newer and
a pre-per-request one; and a service that finds the wrong version."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_URL, free_port, postgres_log
from tests.support.service import ROOT, launch
from vigil import migrations
from vigil.inference_log import InferenceLog, LogRecord, LogSchemaError, _params
from vigil.prediction_ids import new_request_id, prediction_id

HEAD = "0002_partitioned_requests"
DAY = 86_400


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty(request, tmp_path):
    """(url, prefix) of a database with none of the prefix's tables; dropped afterwards."""
    if request.param == "sqlite":
        url, prefix = f"sqlite:///{tmp_path / 'log.sqlite3'}", "vigil_"
    else:
        probe = postgres_log()  # skips (or fails under CI) without PostgreSQL
        probe.drop_schema()
        probe.close()
        url, prefix = POSTGRES_URL, f"m{uuid.uuid4().hex[:10]}_"
    yield url, prefix
    log = InferenceLog(url, prefix)
    log.drop_schema()
    log.close()


def d8d9393_tables(prefix: str) -> sa.MetaData:
    """The tables exactly as Vigil d8d9393 declared them (it made them with create_all)."""
    ident = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    md = sa.MetaData()
    sa.Table(
        f"{prefix}requests",
        md,
        sa.Column("id", ident, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(32), nullable=False, unique=True),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("instances", sa.Text, nullable=False),
        sa.Column("predictions", sa.Text, nullable=False),
        sa.Column("probabilities", sa.Text, nullable=False),
        sa.Index(f"{prefix}requests_version_id", "model_version", "id", "created_at", "row_count"),
        sa.Index(f"{prefix}requests_created", "created_at"),
    )
    sa.Table(
        f"{prefix}feedback",
        md,
        sa.Column("prediction_id", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("row_offset", sa.Integer, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Index(f"{prefix}feedback_request", "request_id", "row_offset"),
    )
    return md


def record(n: int, at: float, version: str = "vigil-model:a", first: int = 0) -> LogRecord:
    return LogRecord(
        request_id=new_request_id(at),
        model_version=version,
        created_at=at,
        instances=[{"x": float(first + i), "colour": "red"} for i in range(n)],
        predictions=[(first + i) % 2 for i in range(n)],
        probabilities={"0": [0.25] * n, "1": [0.75] * n},
    )


def db_cli(url: str, prefix: str, *args: str) -> subprocess.CompletedProcess:
    env = {"VIGIL_DATABASE_URL": url, "VIGIL_TABLE_PREFIX": prefix, "VIGIL_ENV_FILE": ""}
    return subprocess.run(
        [sys.executable, "-m", "vigil.db", *args],
        cwd=ROOT,
        env={**_base_env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}


def test_a_fresh_database_is_created_at_head_with_its_own_version_table(empty):
    url, prefix = empty
    log = InferenceLog(url, prefix)
    assert log.schema_state().state == "empty"
    with pytest.raises(LogSchemaError, match="python -m vigil.db upgrade"):
        log.check_schema()
    log.create_schema()
    log.check_schema()
    with log.engine.connect() as conn:
        version = conn.execute(sa.text(f"SELECT version_num FROM {prefix}alembic_version"))
        assert version.scalars().all() == [HEAD]
        assert "alembic_version" not in sa.inspect(conn).get_table_names()
    log.close()
    out = db_cli(url, prefix, "current")
    assert out.returncode == 0 and f"database: {HEAD}" in out.stdout, out.stderr
    assert db_cli(url, prefix, "check").returncode == 0


def test_processes_starting_together_create_the_schema_once(empty):
    url, prefix = empty
    errors: list[BaseException] = []

    def start():
        log = InferenceLog(url, prefix, timeout=10)
        try:
            log.create_schema()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            log.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert InferenceLog(url, prefix).schema_state().state == "current"


def test_upgrade_from_the_d8d9393_schema_keeps_its_data(empty):
    url, prefix = empty
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    old = d8d9393_tables(prefix)
    old.create_all(engine)
    now = time.time()
    # Three days of traffic, oldest first, then one label.
    records = [record(10, now - (2 - day) * DAY, first=10 * day) for day in range(3)]
    with engine.begin() as conn:
        conn.execute(old.tables[f"{prefix}requests"].insert(), [_params(r) for r in records])
        conn.execute(
            old.tables[f"{prefix}feedback"].insert(),
            [
                {
                    "prediction_id": prediction_id(records[0].request_id, 3),
                    "request_id": records[0].request_id,
                    "row_offset": 3,
                    "label": "1",
                    "received_at": now,
                }
            ],
        )
    engine.dispose()

    log = InferenceLog(url, prefix)
    assert log.schema_state().state == "unversioned"
    # The service refuses it (create_schema never touches a database that has tables).
    with pytest.raises(LogSchemaError, match=r"unversioned.*run `python -m vigil.db upgrade`"):
        log.create_schema()
    out = db_cli(url, prefix, "check")
    assert out.returncode == 1 and "python -m vigil.db upgrade" in out.stderr

    out = db_cli(url, prefix, "upgrade")
    assert out.returncode == 0, out.stderr
    assert f"unversioned -> {HEAD}" in out.stdout
    log.check_schema()

    assert log.count() == 30
    window = log.latest("vigil-model:a", 25)
    assert window.frame["x"].tolist() == [float(i) for i in range(5, 30)]
    labeled = log.labeled("vigil-model:a", 10)
    assert labeled["prediction_id"].tolist() == [prediction_id(records[0].request_id, 3)]
    assert log.add_feedback([(prediction_id(records[2].request_id, 9), 0)]) == (1, [])
    log.write([record(5, now + 1, first=30)])
    assert log.latest("vigil-model:a", 6).frame["x"].tolist() == [float(i) for i in range(29, 35)]
    if log.partitioned:
        with log.engine.connect() as conn:
            kind = conn.scalar(
                sa.text("SELECT relkind FROM pg_class WHERE relname = :t"),
                {"t": f"{prefix}requests"},
            )
            assert kind == "p"
            # Every old row is in its day's partition, none in the default one.
            assert conn.scalar(sa.text(f'SELECT count(*) FROM "{prefix}requests_default"')) == 0
    # Upgrading again changes nothing.
    assert db_cli(url, prefix, "upgrade").returncode == 0
    assert log.count() == 35
    log.close()


def test_an_older_revision_is_refused_until_upgraded_and_downgrade_keeps_data(empty):
    url, prefix = empty
    log = InferenceLog(url, prefix)
    log.create_schema()
    log.write([record(4, time.time() - i * DAY, first=4 * i) for i in range(3)])
    assert db_cli(url, prefix, "downgrade", "0001_baseline").returncode == 0
    state = log.schema_state()
    assert (state.state, state.revision) == ("behind", "0001_baseline")
    with pytest.raises(LogSchemaError, match=f"0001_baseline, this build needs {HEAD}.*upgrade"):
        log.create_schema()
    assert log.count() == 12  # the baseline tables hold the same rows
    assert db_cli(url, prefix, "upgrade").returncode == 0
    log.check_schema()
    assert log.count() == 12
    assert len(log.latest("vigil-model:a", 100).frame) == 12
    log.close()


def test_a_newer_revision_is_refused(empty):
    url, prefix = empty
    log = InferenceLog(url, prefix)
    log.create_schema()
    with log.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {prefix}alembic_version SET version_num = '0099_future'"))
    with pytest.raises(LogSchemaError, match="0099_future, which this build does not know"):
        log.create_schema()
    out = db_cli(url, prefix, "upgrade")
    assert out.returncode == 1 and "does not know" in out.stderr
    assert "Traceback" not in out.stderr
    log.close()


def test_a_log_from_before_the_per_request_change_is_refused_not_touched(empty):
    url, prefix = empty
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        # e22e474^: one row per instance in <prefix>predictions, labels keyed by prediction id.
        conn.execute(
            sa.text(
                f"CREATE TABLE {prefix}predictions (id INTEGER PRIMARY KEY, "
                "prediction_id VARCHAR(64) NOT NULL UNIQUE, request_id VARCHAR(64) NOT NULL, "
                "model_version VARCHAR(200) NOT NULL, created_at FLOAT NOT NULL, "
                "inputs TEXT NOT NULL, prediction TEXT NOT NULL, probabilities TEXT NOT NULL)"
            )
        )
        conn.execute(
            sa.text(
                f"CREATE TABLE {prefix}feedback (prediction_id VARCHAR(64) PRIMARY KEY, "
                "label TEXT NOT NULL, received_at FLOAT NOT NULL)"
            )
        )
    engine.dispose()
    log = InferenceLog(url, prefix)
    with pytest.raises(LogSchemaError, match="before the per-request log.*VIGIL_TABLE_PREFIX"):
        log.create_schema()
    out = db_cli(url, prefix, "upgrade")
    assert out.returncode == 1 and "cannot be migrated" in out.stderr
    with log.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert f"{prefix}requests" not in tables and f"{prefix}alembic_version" not in tables
    log.close()


@pytest.mark.integration
def test_a_service_on_an_older_schema_is_alive_not_ready_and_says_what_to_run(trained_home):
    url = f"sqlite:///{trained_home / 'inference.sqlite3'}"
    log = InferenceLog(url)
    log.create_schema()
    migrations.downgrade(log.engine, log.table_prefix, "0001_baseline")
    log.close()
    handle = launch(trained_home, free_port(), {"VIGIL_WORKERS": "1"})
    try:
        deadline = time.monotonic() + 120
        while True:
            assert handle.proc.poll() is None, handle.log_text()
            try:
                if httpx.get(f"{handle.url}/livez", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, handle.log_text()
            time.sleep(0.3)
        ready = httpx.get(f"{handle.url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert "python -m vigil.db upgrade" in ready.text
        assert "sqlite" not in ready.text and "Traceback" not in ready.text
        assert db_cli(url, "vigil_", "upgrade").returncode == 0
        # The service retries on the readiness probe and becomes ready on its own.
        deadline = time.monotonic() + 60
        while httpx.get(f"{handle.url}/readyz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, handle.log_text()
            time.sleep(0.5)
    finally:
        handle.terminate()
