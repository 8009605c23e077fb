"""PostgreSQL: the requests table partitioned by day of ``created_at`` (``vigil.log.partitions``
manages them from then on), so retention drops partitions and a window reads only recent ones.
SQLite: no change.

The primary key and the request id's unique index include the partition key, as PostgreSQL
requires; ``id`` keeps its sequence (windows are ordered by it). Existing rows are copied into
day partitions of the days they hold. The partitions' names and bounds are frozen here, as
this revision made them.

Revision ID: 0002_partitioned_requests
Revises: 0001_baseline
"""

import time

import sqlalchemy as sa
from alembic import op

from vigil.store.migrations import table_prefix

revision = "0002_partitioned_requests"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

_COLUMNS = (
    "id, request_id, model_version, created_at, row_count, instances, predictions, probabilities"
)
DAY = 86_400
AHEAD_DAYS = 2  # partitions made ahead of today


def _day_partition(t: str, day: int) -> None:
    """The partition of ``t`` for UTC day ``day`` (days since the epoch)."""
    name = f"{t}_p{time.strftime('%Y%m%d', time.gmtime(day * DAY))}"
    op.execute(
        f'CREATE TABLE "{name}" PARTITION OF "{t}" '
        f"FOR VALUES FROM ({day * DAY}) TO ({(day + 1) * DAY})"
    )


def _indexes(p: str) -> None:
    op.create_index(
        f"{p}requests_version_id",
        f"{p}requests",
        ["model_version", "id", "created_at", "row_count"],
    )
    op.create_index(f"{p}requests_created", f"{p}requests", ["created_at"])


def _free_names(p: str, old: str) -> None:
    """Rename the table ``old`` and drop its keys and indexes: their names are the new one's."""
    t = f"{p}requests"
    op.execute(f'ALTER TABLE "{t}" RENAME TO "{old}"')
    op.execute(f'ALTER TABLE "{old}" DROP CONSTRAINT "{t}_pkey"')
    op.execute(f'ALTER TABLE "{old}" DROP CONSTRAINT "{t}_request_id_key"')
    op.execute(f'DROP INDEX "{p}requests_version_id"')
    op.execute(f'DROP INDEX "{p}requests_created"')
    op.execute(f'ALTER SEQUENCE "{t}_id_seq" OWNED BY NONE')


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    p = table_prefix()
    t, old = f"{p}requests", f"{p}requests_unpartitioned"
    _free_names(p, old)
    op.execute(
        f'CREATE TABLE "{t}" ('
        f"id bigint NOT NULL DEFAULT nextval('\"{t}_id_seq\"'), "
        "request_id varchar(32) NOT NULL, model_version varchar(200) NOT NULL, "
        "created_at double precision NOT NULL, row_count integer NOT NULL, "
        "instances text NOT NULL, predictions text NOT NULL, probabilities text NOT NULL, "
        f'CONSTRAINT "{t}_pkey" PRIMARY KEY (id, created_at), '
        f'CONSTRAINT "{t}_request_id_key" UNIQUE (request_id, created_at)'
        ") PARTITION BY RANGE (created_at)"
    )
    op.execute(f'ALTER SEQUENCE "{t}_id_seq" OWNED BY "{t}".id')
    op.execute(f'CREATE TABLE "{t}_default" PARTITION OF "{t}" DEFAULT')
    days = op.get_bind().execute(sa.text(f'SELECT DISTINCT floor(created_at / {DAY}) FROM "{old}"'))
    today = int(time.time() // DAY)
    for day in sorted({int(d) for (d,) in days} | set(range(today, today + AHEAD_DAYS + 1))):
        _day_partition(t, day)
    op.execute(f'INSERT INTO "{t}" ({_COLUMNS}) SELECT {_COLUMNS} FROM "{old}"')
    op.execute(f'DROP TABLE "{old}"')
    _indexes(p)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    p = table_prefix()
    t, old = f"{p}requests", f"{p}requests_partitioned"
    _free_names(p, old)
    op.execute(
        f'CREATE TABLE "{t}" ('
        f"id bigint NOT NULL DEFAULT nextval('\"{t}_id_seq\"'), "
        "request_id varchar(32) NOT NULL, model_version varchar(200) NOT NULL, "
        "created_at double precision NOT NULL, row_count integer NOT NULL, "
        "instances text NOT NULL, predictions text NOT NULL, probabilities text NOT NULL, "
        f'CONSTRAINT "{t}_pkey" PRIMARY KEY (id), '
        f'CONSTRAINT "{t}_request_id_key" UNIQUE (request_id))'
    )
    op.execute(f'ALTER SEQUENCE "{t}_id_seq" OWNED BY "{t}".id')
    op.execute(f'INSERT INTO "{t}" ({_COLUMNS}) SELECT {_COLUMNS} FROM "{old}"')
    op.execute(f'DROP TABLE "{old}"')  # and its partitions
    _indexes(p)
