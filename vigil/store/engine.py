"""The one engine factory: every SQLAlchemy engine of Vigil (the inference log's, the model
registry's) comes from ``engine_for``, one per database and process, so a process holds one
connection pool per database however many logs and registries it opens.

SQLite: WAL, a busy timeout and FULL sync on each connection. A transaction begins as
pysqlite's own rule has it (BEGIN just before its first write: reads before it see the latest
data, and a writer is never refused for reading first), unless its connection asks for more:
``sqlite_begin`` sends BEGIN at its start (one snapshot for all it reads), ``sqlite_immediate``
BEGIN IMMEDIATE (the write lock at its start: SQLite's answer to SELECT ... FOR UPDATE).
PostgreSQL: psycopg 3, the session settings of
``vigil.store.session`` and a ping before a pooled connection is reused.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vigil.store import session

# Connections the pool keeps open per process (the log's writes and reads, the registry's
# polls); more are opened under a burst and closed after it.
POOL_SIZE = 4


def normalise_url(url: str) -> str:
    """``url`` with the driver Vigil ships: plain postgresql:// would pick psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def engine_for(url: str, timeout: float = 5.0) -> Engine:
    """The process's engine for the database at ``url``; each wait bounded by about
    ``timeout`` seconds. Disposing of it (a closed log) empties its pool; it stays usable."""
    return _engine(normalise_url(url), timeout)


@lru_cache(maxsize=64)
def _engine(url: str, timeout: float) -> Engine:
    if not url.startswith("sqlite"):
        return sa.create_engine(
            url,
            pool_pre_ping=True,
            pool_size=POOL_SIZE,
            connect_args=session.connect_args(timeout),
        )
    path = url.split(":///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": timeout, "check_same_thread": False})
    sa.event.listen(engine, "connect", _sqlite_connected(timeout))
    sa.event.listen(engine, "begin", _begin)
    sa.event.listen(engine, "before_cursor_execute", _begin_before_a_write)
    return engine


def _sqlite_connected(timeout: float) -> Callable[[Any, Any], None]:
    """A ``connect`` listener for a new SQLite connection."""

    def on_connect(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        # How long a write waits for a lock before the request gets a 503.
        cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        _switch_to_wal(cur, timeout)
        # FULL: a committed batch survives power loss, not only a process crash.
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()
        dbapi_conn.isolation_level = None  # we send BEGIN ourselves (_begin)

    return on_connect


def _switch_to_wal(cur, timeout: float) -> None:
    """``PRAGMA journal_mode=WAL``, retried: while another connection holds a new file's
    write lock, SQLite answers "database is locked" at once, without its busy handler
    (processes starting together on an empty log). WAL mode persists in the file, so once
    one connection has switched it the others' pragma takes no lock."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _begin(conn) -> None:
    options = conn.get_execution_options()
    if options.get("sqlite_immediate"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif options.get("sqlite_begin"):
        conn.exec_driver_sql("BEGIN")


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def _begin_before_a_write(conn, cursor, statement, parameters, context, executemany) -> None:
    # pysqlite's rule, which we took over with its isolation_level: BEGIN before the first
    # write of a transaction that has not begun.
    if conn.connection.dbapi_connection.in_transaction:
        return
    if statement.lstrip()[:7].upper().startswith(_WRITES):
        cursor.execute("BEGIN")
