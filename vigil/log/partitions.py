"""Daily partitions of the inference log's requests table on PostgreSQL.

``<prefix>requests`` is partitioned by range of ``created_at`` (Unix seconds), one partition
per UTC day named ``<prefix>requests_pYYYYMMDD``, plus a default partition that takes any row
no day partition covers, so a write never fails for want of a partition. Writers create the
partitions for today and the days ahead (``ensure``); retention drops whole partitions
(``drop_one``, one partition per transaction) instead of deleting rows. SQLite keeps one
plain table.

A day partition cannot be created while the default partition holds rows of that day (they
would have to move): ``ensure`` then leaves that day to the default partition.
"""

from __future__ import annotations

import calendar
import logging
import time
import zlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

DAY = 86_400
AHEAD_DAYS = 2  # partitions made ahead of today: writes near midnight find theirs there
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Partition:
    name: str
    start: float  # Unix seconds, inclusive
    end: float  # exclusive


def day_partition(prefix: str, day: int) -> Partition:
    """The partition of UTC day ``day`` (days since the epoch)."""
    stamp = time.strftime("%Y%m%d", time.gmtime(day * DAY))
    return Partition(f"{prefix}requests_p{stamp}", float(day * DAY), float((day + 1) * DAY))


def default_partition(prefix: str) -> str:
    return f"{prefix}requests_default"


def lock(conn: Connection, prefix: str) -> None:
    """Serialise partition changes of one prefix (within the current transaction)."""
    key = zlib.crc32(f"vigil-partitions:{prefix}".encode())
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def partitions(conn: Connection, prefix: str) -> list[Partition]:
    """The day partitions that exist, oldest first."""
    rows = conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:parent)"
        ),
        {"parent": f'"{prefix}requests"'},
    ).scalars()
    found = []
    stem = f"{prefix}requests_p"
    for name in rows:
        if name.startswith(stem) and name[len(stem) :].isdigit():
            day = calendar.timegm(time.strptime(name[len(stem) :], "%Y%m%d")) // DAY
            found.append(day_partition(prefix, day))
    return sorted(found, key=lambda p: p.start)


def create(conn: Connection, prefix: str, days: list[int]) -> list[str]:
    """Create the partitions of ``days`` that are missing; returns the names created. Call
    inside a transaction, after ``lock``."""
    existing = {p.name for p in partitions(conn, prefix)}
    made = []
    for day in days:
        part = day_partition(prefix, day)
        if part.name in existing:
            continue
        bounds = {"lo": part.start, "hi": part.end}
        busy = conn.scalar(
            sa.text(
                f'SELECT 1 FROM "{default_partition(prefix)}" '
                "WHERE created_at >= :lo AND created_at < :hi LIMIT 1"
            ),
            bounds,
        )
        if busy:
            logger.info("%s: rows of that day are in the default partition; left there", part.name)
            continue
        # Bounds are literals in DDL; both are whole numbers of seconds.
        conn.exec_driver_sql(
            f'CREATE TABLE "{part.name}" PARTITION OF "{prefix}requests" '
            f"FOR VALUES FROM ({part.start:.0f}) TO ({part.end:.0f})"
        )
        made.append(part.name)
    return made


def ensure(conn: Connection, prefix: str, now: float) -> list[str]:
    """Today's partition and ``AHEAD_DAYS`` after it (one transaction, serialised)."""
    lock(conn, prefix)
    today = int(now // DAY)
    return create(conn, prefix, list(range(today, today + AHEAD_DAYS + 1)))


# How long dropping a partition may wait for its lock on the parent. While it waits, every
# write queues behind it, so it gives up quickly and tries again after writers got through.
DROP_LOCK_WAIT = 0.2
DROP_ATTEMPTS = 50
DROP_PAUSE = 0.2


def due(conn: Connection, prefix: str, cutoff: float) -> list[Partition]:
    """The day partitions wholly older than ``cutoff``, oldest first."""
    return [p for p in partitions(conn, prefix) if p.end <= cutoff]


class PartitionBusy(Exception):
    """The drop did not get its lock in time; its transaction must roll back."""


def drop_one(conn: Connection, prefix: str, part: Partition, feedback: str) -> int:
    """Drop one day partition with its labels (in table ``feedback``), in the caller's
    transaction, which must commit at once: ``DROP TABLE`` holds an ACCESS EXCLUSIVE lock on
    the parent, which blocks every write, until commit. Returns the predictions it held;
    ``PartitionBusy`` when its lock was not had within ``DROP_LOCK_WAIT``."""
    lock(conn, prefix)
    if conn.scalar(sa.text("SELECT to_regclass(:t)"), {"t": f'"{part.name}"'}) is None:
        return 0  # another process dropped it first
    # Each lock briefly: a long read holding the table would otherwise keep the drop waiting,
    # with every write queued behind it.
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(DROP_LOCK_WAIT * 1000)}")
    try:
        # The day first, before its labels are deleted: a label sent meanwhile waits to look
        # its request up until the day is gone (and is refused), never lands after the delete
        # as an orphan. Writes go to today's partition and do not wait.
        conn.exec_driver_sql(f'LOCK TABLE "{part.name}" IN ACCESS EXCLUSIVE MODE')
        removed = int(
            conn.scalar(sa.text(f'SELECT coalesce(sum(row_count), 0) FROM "{part.name}"')) or 0
        )
        conn.exec_driver_sql(
            f'DELETE FROM "{feedback}" WHERE request_id IN (SELECT request_id FROM "{part.name}")'
        )
        # The parent's lock last: it blocks every write until commit.
        conn.exec_driver_sql(f'DROP TABLE "{part.name}"')
    except sa.exc.OperationalError as exc:
        if "lock timeout" not in str(exc):
            raise
        raise PartitionBusy(part.name) from exc
    return removed
