"""The tables of a candidate model tried on live traffic (SQLAlchemy Core, SQLite and PostgreSQL).

- ``candidate``: exactly one row beside the production pointer: the candidate's tag, its mode
  (``shadow`` or ``canary``, or none), a canary's percent, and a revision that every start or
  stop increments (what the replicas poll, as they poll the production pointer's).
- ``candidate_history``: every start and stop, who made it and when.
- ``shadow_predictions``: the other model's predictions of an answered request, one row per
  request and model version (a row is written in one statement: whole or absent), keyed like
  the inference log's requests, so that a prediction id names both models' predictions.
- ``candidate_verdicts``: every verdict of the monitor on a candidate, with its figures; what
  ``training.promote --if-better`` reads.

Names carry ``VIGIL_TABLE_PREFIX``; made by migration ``0004_candidates``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sqlalchemy as sa

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CANDIDATE_ID = 1  # the candidate table's one row


@dataclass(frozen=True)
class CandidateTables:
    metadata: sa.MetaData
    candidate: sa.Table
    history: sa.Table
    shadow: sa.Table
    verdicts: sa.Table


@lru_cache(maxsize=64)
def candidate_tables(prefix: str = "vigil_") -> CandidateTables:
    md = sa.MetaData()
    candidate = sa.Table(
        f"{prefix}candidate",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tag", sa.String(200)),
        sa.Column("mode", sa.String(16)),  # shadow | canary | NULL (none)
        sa.Column("percent", sa.Float, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("changed_at", sa.Float),
    )
    history = sa.Table(
        f"{prefix}candidate_history",
        md,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("revision", sa.BigInteger, nullable=False, unique=True),
        sa.Column("action", sa.String(16), nullable=False),  # start | stop
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("tag", sa.String(200), nullable=False),
        sa.Column("percent", sa.Float, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("by", sa.String(200), nullable=False),
    )
    shadow = sa.Table(
        f"{prefix}shadow_predictions",
        md,
        sa.Column("request_id", sa.String(32), primary_key=True),
        sa.Column("model_version", sa.String(200), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("predictions", sa.Text, nullable=False),  # JSON, as the log's
        sa.Column("probabilities", sa.Text, nullable=False),
        sa.Index(f"{prefix}shadow_predictions_created", "created_at"),
    )
    verdicts = sa.Table(
        f"{prefix}candidate_verdicts",
        md,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("candidate_version", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("checked_at", sa.Float, nullable=False),
        sa.Column("labeled_rows", sa.Integer, nullable=False),
        sa.Column("better", sa.Integer),  # 1 better, 0 worse, NULL undecided
        sa.Column("figures", sa.Text, nullable=False),  # the check's "candidate" JSON
        sa.Index(f"{prefix}candidate_verdicts_tag", "candidate_version", "id"),
    )
    return CandidateTables(md, candidate, history, shadow, verdicts)
