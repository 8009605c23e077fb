"""Every table of Vigil's database as queried (SQLAlchemy Core, one definition for SQLite and
PostgreSQL). They are made, and versioned together, by ``migrations`` (``python -m vigil.db``);
the log and the registry above query them, and ``roles`` grants on them. Names carry
``VIGIL_TABLE_PREFIX``.

The inference log's (``log_tables``; DDL in ``0001_baseline`` and, partitioned by day on
PostgreSQL, ``0002_partitioned_requests``):

- ``requests``: one row per answered request, its instances, predictions and probabilities as
  JSON (``vigil.log.format``).
- ``feedback``: the labels, one row per prediction id.

The model registry's (``registry_tables``; made by ``0003_registry``):

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

A candidate model tried on live traffic (``candidate_tables``; made by ``0004_candidates``):

- ``candidate``: exactly one row beside the production pointer: the candidate's tag, its mode
  (``shadow`` or ``canary``, or none), a canary's percent, and a revision that every start or
  stop increments (what the replicas poll, as they poll the production pointer's).
- ``candidate_history``: every start and stop, who made it and when.
- ``shadow_predictions``: the other model's predictions of an answered request, one row per
  request and model version (a row is written in one statement: whole or absent), keyed like
  the inference log's requests, so that a prediction id names both models' predictions.
- ``candidate_verdicts``: every verdict of the monitor on a candidate, with its figures; what
  ``training.promote --if-better`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sqlalchemy as sa

# SQLite only autoincrements a plain INTEGER primary key.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
POINTER_ID = 1  # the production table's one row
CANDIDATE_ID = 1  # the candidate table's one row


class _Builder:
    """Tables named with one prefix, in one ``MetaData``."""

    def __init__(self, prefix: str):
        self.prefix, self.metadata = prefix, sa.MetaData()

    def table(self, name: str, *items: sa.Column | sa.Index) -> sa.Table:
        return sa.Table(f"{self.prefix}{name}", self.metadata, *items)

    def index(self, name: str, *columns: str) -> sa.Index:
        return sa.Index(f"{self.prefix}{name}", *columns)

    def pointer(self, name: str, *columns: sa.Column) -> sa.Table:
        """A pointer: one row naming a tag (``columns`` say more), and a revision that every
        change increments."""
        return self.table(
            name,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("tag", sa.String(200)),
            *columns,
            sa.Column("revision", sa.BigInteger, nullable=False),
            sa.Column("changed_at", sa.Float),
        )

    def history(self, name: str, *columns: sa.Column) -> sa.Table:
        """A pointer's history: one row per change (its ``action`` and ``columns``), by
        revision, with who made it and when."""
        return self.table(
            name,
            sa.Column("id", ID, primary_key=True, autoincrement=True),
            sa.Column("revision", sa.BigInteger, nullable=False, unique=True),
            sa.Column("action", sa.String(16), nullable=False),
            *columns,
            sa.Column("at", sa.Float, nullable=False),
            sa.Column("by", sa.String(200), nullable=False),
        )


@dataclass(frozen=True)
class LogTables:
    metadata: sa.MetaData
    requests: sa.Table
    feedback: sa.Table


@lru_cache(maxsize=64)
def log_tables(prefix: str = "vigil_") -> LogTables:
    """The tables as queried; their DDL (keys, partitions) is in the migrations."""
    b = _Builder(prefix)
    requests = b.table(
        "requests",
        # Insertion order: windows are "the newest rows" in this order.
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False),
        # JSON (vigil.log.format), one element per instance; the big columns last.
        sa.Column("instances", sa.Text, nullable=False),
        sa.Column("predictions", sa.Text, nullable=False),
        sa.Column("probabilities", sa.Text, nullable=False),
        # Covers a window's planning (which records, how many rows each, how old) without
        # touching the records themselves.
        b.index("requests_version_id", "model_version", "id", "created_at", "row_count"),
        b.index("requests_created", "created_at"),
    )
    feedback = b.table(
        "feedback",
        sa.Column("prediction_id", sa.String(64), primary_key=True),
        # The prediction id split: the logged request and the instance's position in it.
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("row_offset", sa.Integer, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        # "The newest labels" walks this backwards (request ids are time-ordered).
        b.index("feedback_request", "request_id", "row_offset"),
    )
    return LogTables(b.metadata, requests, feedback)


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
    b = _Builder(prefix)
    models = b.table(
        "models",
        sa.Column("id", ID, primary_key=True, autoincrement=True),  # save order
        sa.Column("tag", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("contract", sa.Text, nullable=False),  # JSON
        sa.Column("metrics", sa.Text, nullable=False),  # JSON
        sa.Column("dataset_sha256", sa.String(64)),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("parent", sa.String(200)),
    )
    artifacts = b.table(
        "model_artifacts",
        sa.Column("tag", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )
    blobs = b.table(
        "blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    production = b.pointer(
        "production",
        sa.Column("previous", sa.Text, nullable=False),  # JSON list: the rollback stack
    )
    history = b.history(  # action: promote | rollback
        "production_history",
        sa.Column("tag", sa.String(200), nullable=False),
        sa.Column("previous", sa.String(200)),
    )
    return RegistryTables(b.metadata, models, artifacts, blobs, production, history)


@dataclass(frozen=True)
class CandidateTables:
    metadata: sa.MetaData
    candidate: sa.Table
    history: sa.Table
    shadow: sa.Table
    verdicts: sa.Table


@lru_cache(maxsize=64)
def candidate_tables(prefix: str = "vigil_") -> CandidateTables:
    b = _Builder(prefix)
    candidate = b.pointer(
        "candidate",
        sa.Column("mode", sa.String(16)),  # shadow | canary | NULL (none)
        sa.Column("percent", sa.Float, nullable=False),
    )
    history = b.history(  # action: start | stop
        "candidate_history",
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("tag", sa.String(200), nullable=False),
        sa.Column("percent", sa.Float, nullable=False),
    )
    shadow = b.table(
        "shadow_predictions",
        sa.Column("request_id", sa.String(32), primary_key=True),
        sa.Column("model_version", sa.String(200), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("predictions", sa.Text, nullable=False),  # JSON, as the log's
        sa.Column("probabilities", sa.Text, nullable=False),
        b.index("shadow_predictions_created", "created_at"),
    )
    verdicts = b.table(
        "candidate_verdicts",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("candidate_version", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("checked_at", sa.Float, nullable=False),
        sa.Column("labeled_rows", sa.Integer, nullable=False),
        sa.Column("better", sa.Integer),  # 1 better, 0 worse, NULL undecided
        sa.Column("figures", sa.Text, nullable=False),  # the check's "candidate" JSON
        b.index("candidate_verdicts_tag", "candidate_version", "id"),
    )
    return CandidateTables(b.metadata, candidate, history, shadow, verdicts)
