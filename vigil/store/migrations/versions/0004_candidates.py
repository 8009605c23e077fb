"""A candidate tried on live traffic (``vigil.store.tables``): the candidate pointer
with its one row, its history, the shadow predictions, and the monitor's verdicts.

The definitions are frozen here; ``vigil.store.tables`` holds the ones queried, and the
tests check that the two agree. Downgrading drops these tables: the build before this
revision knows nothing of candidates.

Revision ID: 0004_candidates
Revises: 0003_registry
"""

import sqlalchemy as sa
from alembic import op

from vigil.store.migrations import table_prefix

revision = "0004_candidates"
down_revision = "0003_registry"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CANDIDATE_ID = 1


def tables(p: str) -> list[sa.Table]:
    md = sa.MetaData()
    return [
        sa.Table(
            f"{p}candidate",
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("tag", sa.String(200)),
            sa.Column("mode", sa.String(16)),
            sa.Column("percent", sa.Float, nullable=False),
            sa.Column("revision", sa.BigInteger, nullable=False),
            sa.Column("changed_at", sa.Float),
        ),
        sa.Table(
            f"{p}candidate_history",
            md,
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("revision", sa.BigInteger, nullable=False, unique=True),
            sa.Column("action", sa.String(16), nullable=False),
            sa.Column("mode", sa.String(16), nullable=False),
            sa.Column("tag", sa.String(200), nullable=False),
            sa.Column("percent", sa.Float, nullable=False),
            sa.Column("at", sa.Float, nullable=False),
            sa.Column("by", sa.String(200), nullable=False),
        ),
        sa.Table(
            f"{p}shadow_predictions",
            md,
            sa.Column("request_id", sa.String(32), primary_key=True),
            sa.Column("model_version", sa.String(200), primary_key=True),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("row_count", sa.Integer, nullable=False),
            sa.Column("predictions", sa.Text, nullable=False),
            sa.Column("probabilities", sa.Text, nullable=False),
            sa.Index(f"{p}shadow_predictions_created", "created_at"),
        ),
        sa.Table(
            f"{p}candidate_verdicts",
            md,
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("candidate_version", sa.String(200), nullable=False),
            sa.Column("model_version", sa.String(200), nullable=False),
            sa.Column("mode", sa.String(16), nullable=False),
            sa.Column("checked_at", sa.Float, nullable=False),
            sa.Column("labeled_rows", sa.Integer, nullable=False),
            sa.Column("better", sa.Integer),
            sa.Column("figures", sa.Text, nullable=False),
            sa.Index(f"{p}candidate_verdicts_tag", "candidate_version", "id"),
        ),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    made = tables(table_prefix())
    existing = set(sa.inspect(bind).get_table_names())
    for table in made:
        if table.name not in existing:
            table.create(bind)
    candidate = made[0]
    row = sa.select(candidate.c.id).where(candidate.c.id == CANDIDATE_ID)
    if bind.scalar(row) is None:
        bind.execute(
            candidate.insert().values(id=CANDIDATE_ID, tag=None, mode=None, percent=0.0, revision=0)
        )


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(tables(table_prefix())):
        table.drop(bind, checkfirst=True)
