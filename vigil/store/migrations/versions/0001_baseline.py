"""The inference log as Vigil d8d9393 created it with ``create_all``: one record per request
(``requests``) and the labels joined to them (``feedback``).

A database that build made has these tables and no version table: ``python -m vigil.db
upgrade`` stamps it with this revision (after checking its columns) and goes on from here.

Revision ID: 0001_baseline
Revises:
"""

import sqlalchemy as sa
from alembic import op

from vigil.store.migrations import table_prefix

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

# SQLite only autoincrements a plain INTEGER primary key.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    p = table_prefix()
    op.create_table(
        f"{p}requests",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(32), nullable=False, unique=True),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("instances", sa.Text, nullable=False),
        sa.Column("predictions", sa.Text, nullable=False),
        sa.Column("probabilities", sa.Text, nullable=False),
    )
    op.create_index(
        f"{p}requests_version_id",
        f"{p}requests",
        ["model_version", "id", "created_at", "row_count"],
    )
    op.create_index(f"{p}requests_created", f"{p}requests", ["created_at"])
    op.create_table(
        f"{p}feedback",
        sa.Column("prediction_id", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("row_offset", sa.Integer, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
    )
    op.create_index(f"{p}feedback_request", f"{p}feedback", ["request_id", "row_offset"])


def downgrade() -> None:
    p = table_prefix()
    op.drop_table(f"{p}feedback")
    op.drop_table(f"{p}requests")
