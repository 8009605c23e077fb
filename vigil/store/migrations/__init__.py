"""The schema versions of the inference log and the model registry: Alembic migrations run
from code (no alembic.ini). Both live in one database and one chain of revisions, so one
version says where the whole schema stands.

Each table prefix has its own version table, ``<prefix>alembic_version``, so deployments and
test runs sharing one database migrate independently. ``upgrade`` runs in one transaction
that only one process at a time may hold (an advisory lock on PostgreSQL, SQLite's write
lock), so replicas starting together on an empty database create it once.

States a database can be in (``state``): ``empty`` (none of the prefix's tables), ``current``
(at this build's head), ``behind`` (an older revision), ``unversioned`` (made by Vigil
d8d9393, which used ``create_all``: upgrade stamps it ``0001_baseline`` first), ``unknown``
(a revision this build does not know: a newer build migrated it) and ``legacy`` (a per-instance
``predictions`` table from before the per-request log: refused, see ``LEGACY_HELP``). The state
is read from the log's tables: registry tables that builds before ``0003_registry`` made with
``create_all`` (they kept no version) are adopted by that revision when they match it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from vigil.store.errors import InferenceLogError
from vigil.text import one_line

BASELINE = "0001_baseline"
UPGRADE_COMMAND = "vigil db upgrade"
LEGACY_HELP = (
    "its prediction ids predate the ids this build derives from request ids, so labels sent "
    "for them could never be joined: set VIGIL_TABLE_PREFIX to a fresh prefix (and drop the "
    "old tables once their data is no longer needed)"
)
_HERE = Path(__file__).resolve().parent


def table_prefix() -> str:
    """The prefix of the tables being migrated; for revision scripts."""
    return context.config.attributes["table_prefix"]


def version_table(prefix: str) -> str:
    return f"{prefix}alembic_version"


def _config(connection: Connection | None = None, prefix: str = "") -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    cfg.attributes["connection"] = connection
    cfg.attributes["table_prefix"] = prefix
    return cfg


def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    return script().get_current_head()


@dataclass(frozen=True)
class SchemaState:
    state: str  # empty, current, behind, unversioned, unknown, legacy
    revision: str | None  # the database's, when it has one
    head: str

    @property
    def problem(self) -> str | None:
        """What is wrong, with the command that fixes it; None when current. Names no host,
        user or driver error: it reaches callers of ``/readyz``."""
        if self.state == "current":
            return None
        if self.state == "empty":
            return f"the database has no Vigil schema yet: run `{UPGRADE_COMMAND}`"
        if self.state == "legacy":
            return (
                "the inference log was made by a Vigil build before the per-request log "
                f"and cannot be migrated: {LEGACY_HELP}"
            )
        if self.state == "unknown":
            return (
                f"the database schema is at revision {self.revision}, which this build "
                f"does not know (head {self.head}): a newer Vigil migrated it; run that build, "
                "or downgrade with it (`vigil db downgrade REVISION`)"
            )
        found = "unversioned (Vigil d8d9393)" if self.state == "unversioned" else self.revision
        return (
            f"the database schema is {found}, this build needs {self.head}: run `{UPGRADE_COMMAND}`"
        )


def state(conn: Connection, prefix: str) -> SchemaState:
    """Where the prefix's tables stand against this build's migrations."""
    target = head()
    tables = set(sa.inspect(conn).get_table_names())
    if version_table(prefix) in tables:
        ctx = MigrationContext.configure(conn, opts={"version_table": version_table(prefix)})
        current = ctx.get_current_revision()
        if current is not None:
            if current == target:
                return SchemaState("current", current, target)
            try:
                known = script().get_revision(current) is not None
            except Exception:  # alembic raises for ids it cannot resolve
                known = False
            return SchemaState("behind" if known else "unknown", current, target)
    if f"{prefix}predictions" in tables:
        return SchemaState("legacy", None, target)
    if f"{prefix}requests" in tables or f"{prefix}feedback" in tables:
        if _looks_like_baseline(conn, prefix, tables):
            return SchemaState("unversioned", None, target)
        return SchemaState("legacy", None, target)
    return SchemaState("empty", None, target)


def database_state(engine: Engine, prefix: str) -> SchemaState:
    """``state`` on a connection of its own; ``InferenceLogError`` when the database cannot
    be reached."""
    try:
        with engine.connect() as conn:
            return state(conn, prefix)
    except SQLAlchemyError as exc:
        raise InferenceLogError(f"inference log unreachable: {one_line(exc)}") from exc


def _looks_like_baseline(conn: Connection, prefix: str, tables: set[str]) -> bool:
    """Both tables of 0001_baseline, with (at least) its columns: what d8d9393 created."""
    want = {
        f"{prefix}requests": {"id", "request_id", "model_version", "created_at", "row_count"},
        f"{prefix}feedback": {"prediction_id", "request_id", "row_offset", "label"},
    }
    inspector = sa.inspect(conn)
    for table, columns in want.items():
        if table not in tables:
            return False
        if not columns <= {c["name"] for c in inspector.get_columns(table)}:
            return False
    return True


class SchemaError(RuntimeError):
    """The database's schema is not the one this build needs, or cannot be migrated."""


def upgrade(engine: Engine, prefix: str, revision: str = "head", *, only_if_empty=False) -> str:
    """Migrate the prefix's tables to ``revision``; returns the state found before. With
    ``only_if_empty``, create the schema on an empty database and otherwise change nothing
    (what a starting service may do on its own)."""
    with _locked(engine, prefix) as conn:
        found = state(conn, prefix)
        if found.state in {"legacy", "unknown"}:
            raise SchemaError(found.problem)
        if only_if_empty and found.state != "empty":
            return found.state
        cfg = _config(conn, prefix)
        if found.state == "unversioned":
            command.stamp(cfg, BASELINE)
        command.upgrade(cfg, revision)
        return found.state


def downgrade(engine: Engine, prefix: str, revision: str) -> None:
    with _locked(engine, prefix) as conn:
        command.downgrade(_config(conn, prefix), revision)


def stamp(engine: Engine, prefix: str, revision: str) -> None:
    with _locked(engine, prefix) as conn:
        command.stamp(_config(conn, prefix), revision)


class _locked:
    """A connection in a transaction that only one migrating process holds at a time."""

    def __init__(self, engine: Engine, prefix: str):
        self.engine, self.prefix = engine, prefix

    def __enter__(self) -> Connection:
        self.conn = self.engine.connect()
        try:
            if self.engine.dialect.name == "sqlite":
                # pysqlite would commit each DDL statement on its own; one transaction holding
                # the write lock from the start makes the migration atomic and exclusive. An
                # engine that sends BEGIN itself (the registry's) is asked for an immediate one.
                self.conn.execution_options(sqlite_immediate=True).begin()
                if not self.conn.connection.dbapi_connection.in_transaction:
                    self.conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                self.conn.begin()
                if self.engine.dialect.name == "postgresql":
                    # A migration (copying a big table) may take longer than the log's timeouts.
                    self.conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
                    key = zlib.crc32(f"vigil-migrate:{self.prefix}".encode())
                    self.conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        except Exception:
            self.conn.close()
            raise
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.conn.commit()
            else:
                self.conn.rollback()
        finally:
            self.conn.close()
        return False
