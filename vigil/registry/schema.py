"""The model registry's tables (SQLAlchemy Core), one definition for SQLite and PostgreSQL.

- ``models``: one row per saved model: tag, when, its contract (JSON text) and the fields the
  registry is read by (metrics, dataset sha256, git commit, parent).
- ``model_artifacts``: each model's named artifacts (pipeline, reference, contract, ...) by
  sha256.
- ``blobs``: the artifacts' bytes, keyed by their sha256 (content-addressed: a model saved
  twice stores its bytes once).
- ``production``: exactly one row, the production pointer: which tag, the stack of previous
  ones to roll back to, and a revision that every promotion or rollback increments (what the
  replicas poll). Promotions and rollbacks lock this row.
- ``production_history``: every promotion and rollback, who made it and when.

Names carry ``VIGIL_TABLE_PREFIX``, like the inference log's. These are the tables as queried;
they are made, and versioned with the log's, by the migrations (``vigil.store.migrations``, revision
``0003_registry``; ``python -m vigil.db``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from vigil.log.inference_log import LogSchemaError
from vigil.store import migrations
from vigil.text import one_line

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
POINTER_ID = 1  # the production table's one row


class RegistryError(RuntimeError):
    """The registry's database could not be reached, or its schema created."""


class RegistrySchemaError(RegistryError, LogSchemaError):
    """The database's schema is not this build's; the message names the command to run and
    holds no connection details. The registry and the log share one schema version, so this
    is a ``LogSchemaError`` too: whatever reports the log's (``/readyz``) reports it alike."""


@dataclass(frozen=True)
class RegistryTables:
    metadata: sa.MetaData
    models: sa.Table
    artifacts: sa.Table
    blobs: sa.Table
    production: sa.Table
    history: sa.Table


@lru_cache(maxsize=64)
def registry_tables(prefix: str = "vigil_") -> RegistryTables:
    md = sa.MetaData()
    models = sa.Table(
        f"{prefix}models",
        md,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),  # save order
        sa.Column("tag", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("contract", sa.Text, nullable=False),  # JSON
        sa.Column("metrics", sa.Text, nullable=False),  # JSON
        sa.Column("dataset_sha256", sa.String(64)),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("parent", sa.String(200)),
    )
    artifacts = sa.Table(
        f"{prefix}model_artifacts",
        md,
        sa.Column("tag", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )
    blobs = sa.Table(
        f"{prefix}blobs",
        md,
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    production = sa.Table(
        f"{prefix}production",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tag", sa.String(200)),
        sa.Column("previous", sa.Text, nullable=False),  # JSON list: the rollback stack
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("changed_at", sa.Float),
    )
    history = sa.Table(
        f"{prefix}production_history",
        md,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("revision", sa.BigInteger, nullable=False, unique=True),
        sa.Column("action", sa.String(16), nullable=False),  # promote | rollback
        sa.Column("tag", sa.String(200), nullable=False),
        sa.Column("previous", sa.String(200)),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("by", sa.String(200), nullable=False),
    )
    return RegistryTables(md, models, artifacts, blobs, production, history)


def create_registry_schema(engine: Engine, prefix: str = "vigil_", *, manage: bool = True) -> None:
    """Create the schema on an empty database through the migrations, as the inference log
    does, then check it: ``RegistrySchemaError`` for an older or newer one, which only
    ``python -m vigil.db upgrade`` changes. Processes starting together create it once.
    Without ``manage`` (a role without DDL rights) it is only checked."""
    try:
        if manage:
            migrations.upgrade(engine, prefix, only_if_empty=True)
        with engine.connect() as conn:
            problem = migrations.state(conn, prefix).problem
    except migrations.SchemaError as exc:
        raise RegistrySchemaError(str(exc)) from None
    except SQLAlchemyError as exc:
        raise RegistryError(f"cannot create the model registry schema: {one_line(exc)}") from exc
    if problem is not None:
        raise RegistrySchemaError(problem)


def drop_registry_schema(engine: Engine, prefix: str = "vigil_") -> None:
    """Drop the registry's tables (tests; the version table still says they exist)."""
    registry_tables(prefix).metadata.drop_all(engine)
