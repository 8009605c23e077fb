"""A candidate tried on live traffic (``vigil.candidate_schema``): the candidate pointer with
its one row, its history, the shadow predictions, and the monitor's verdicts.

Downgrading drops these tables: the build before this revision knows nothing of candidates.

Revision ID: 0004_candidates
Revises: 0003_registry
"""

import sqlalchemy as sa
from alembic import op

from vigil.candidate_schema import CANDIDATE_ID, candidate_tables
from vigil.migrations import table_prefix

revision = "0004_candidates"
down_revision = "0003_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    tables = candidate_tables(table_prefix())
    existing = set(sa.inspect(bind).get_table_names())
    for table in (tables.candidate, tables.history, tables.shadow, tables.verdicts):
        if table.name not in existing:
            table.create(bind)
    row = sa.select(tables.candidate.c.id).where(tables.candidate.c.id == CANDIDATE_ID)
    if bind.scalar(row) is None:
        bind.execute(
            tables.candidate.insert().values(
                id=CANDIDATE_ID, tag=None, mode=None, percent=0.0, revision=0
            )
        )


def downgrade() -> None:
    bind = op.get_bind()
    tables = candidate_tables(table_prefix())
    for table in (tables.verdicts, tables.shadow, tables.history, tables.candidate):
        table.drop(bind, checkfirst=True)
