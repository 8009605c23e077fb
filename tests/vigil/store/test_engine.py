"""The one engine factory: one engine, so one connection pool, per database and process,
shared by the inference log and the registry."""

from __future__ import annotations

import sqlite3

import pytest

from vigil.log import InferenceLog
from vigil.registry import Registry
from vigil.settings import get_settings
from vigil.store.engine import engine_for, normalise_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request, tmp_path):
    if request.param == "sqlite":
        return get_settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'one.sqlite3'}")
    url, prefix = request.getfixturevalue("postgres_url")
    return get_settings(home=tmp_path, database_url=url, table_prefix=prefix)


def test_the_log_and_the_registry_share_one_engine(settings):
    log = InferenceLog.from_settings(settings)
    try:
        registry = Registry(settings)
        assert log.engine is registry.engine
        assert Registry(settings).engine is registry.engine  # a registry opened again
        assert InferenceLog.from_settings(settings).engine is log.engine
        assert (
            engine_for(settings.resolved_database_url, settings.log_timeout_seconds) is log.engine
        )
        # Both work through it: the schema made by one is the other's.
        log.create_schema()
        registry.create_schema()
        assert registry.history() == []
    finally:
        log.close()


def test_one_engine_per_database_url(tmp_path):
    one, other = (f"sqlite:///{tmp_path / name}" for name in ("one.sqlite3", "other.sqlite3"))
    assert engine_for(one) is engine_for(one)
    assert engine_for(one) is not engine_for(other)
    pg = "postgresql://postgres@127.0.0.1:5432/test"
    # The spelling of the driver does not make a second pool.
    assert engine_for(pg) is engine_for(normalise_url(pg))
    assert normalise_url(pg).startswith("postgresql+psycopg://")
    assert normalise_url("postgres://h/db") == "postgresql+psycopg://h/db"


def test_a_closed_log_leaves_the_shared_engine_usable(tmp_path):
    settings = get_settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    log = InferenceLog.from_settings(settings)
    log.create_schema()
    registry = Registry(settings)
    log.close()
    assert registry.history() == []


def test_sqlite_connections_are_wal_and_an_immediate_transaction_locks_at_begin(tmp_path):
    path = tmp_path / "db.sqlite3"
    engine = engine_for(f"sqlite:///{path}", 0.2)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    with engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()


def test_a_transaction_that_reads_first_still_writes_after_another_writer(tmp_path):
    """BEGIN comes just before the first write, as pysqlite's own rule: a transaction that
    began at its first read would be refused its write once another writer had committed."""
    path = tmp_path / "db.sqlite3"
    engine = engine_for(f"sqlite:///{path}", 1.0)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with engine.connect() as conn, conn.begin():
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("INSERT INTO t VALUES (1)")
        other.close()
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 2
