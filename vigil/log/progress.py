"""How many rows a model version has logged since a position: the monitor's cheap "is a new
window full yet?" question, asked every second on logs of tens of millions of rows.

A position is a request record's ``id`` (insertion order) and ``created_at``. Counting walks
the ``(model_version, id, created_at, row_count)`` index forward from the position and stops
after ``limit`` records (each holds at least one row, so ``limit`` records are enough to know
whether ``limit`` rows exist): the cost is bounded by the window, never by the log. The
``created_at`` floor (the position's time minus ``CLOCK_SLACK_SECONDS``) changes nothing on an
unpartitioned table but lets PostgreSQL skip old partitions of a table partitioned by time.

Counting only triggers checks; windows are read by ``InferenceLog.latest``. A row this misses
(a transaction that commits after one with a higher id, a clock far behind) still lands in the
next window read; at worst a check comes one tick later or at its interval.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from vigil.log.inference_log import InferenceLog

# How far a record's created_at may lag the newest one already counted (replicas' clocks,
# a batch's commit delay): rows older than the floor are not counted.
CLOCK_SLACK_SECONDS = 600.0


@dataclass(frozen=True)
class Position:
    id: int  # the newest record counted; 0 before any
    created_at: float  # its time (Unix seconds), or when counting started


@dataclass(frozen=True)
class Progress:
    rows: int  # rows found after the position (at most about the limit asked for)
    position: Position  # the newest record counted (the old position when none)


class LogProgress:
    def __init__(self, log: InferenceLog):
        self.log = log

    def newest(self, model_version: str, *, now: float | None = None) -> Position:
        """The newest record of ``model_version``; ``Position(0, now)`` when there is none."""
        r = self.log.requests
        stmt = (
            sa.select(r.c.id, r.c.created_at)
            .where(r.c.model_version == model_version)
            .order_by(r.c.id.desc())
            .limit(1)
        )
        with self.log._reading() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return Position(0, time.time() if now is None else now)
        return Position(int(row.id), float(row.created_at))

    def rows_after(self, model_version: str, after: Position, limit: int) -> Progress:
        """Rows of ``model_version`` in records after ``after``, counting at most ``limit``
        records (so at most about ``limit`` rows are needed to answer "are there ``limit``?")."""
        r = self.log.requests
        page = (
            sa.select(r.c.id, r.c.created_at, r.c.row_count)
            .where(
                r.c.model_version == model_version,
                r.c.id > after.id,
                r.c.created_at >= after.created_at - CLOCK_SLACK_SECONDS,
            )
            .order_by(r.c.id)
            .limit(max(1, int(limit)))
            .subquery()
        )
        stmt = sa.select(
            sa.func.coalesce(sa.func.sum(page.c.row_count), 0),
            sa.func.max(page.c.id),
            sa.func.max(page.c.created_at),
        )
        with self.log._reading() as conn:
            rows, last_id, last_at = conn.execute(stmt).one()
        if last_id is None:
            return Progress(0, after)
        return Progress(int(rows), Position(int(last_id), max(float(last_at), after.created_at)))


class NewRows:
    """Counts a version's new rows since the last check, incrementally: each poll reads only
    the records logged since the previous poll, so a whole window costs one window's index
    entries however often it is polled."""

    def __init__(self, progress: LogProgress):
        self.progress = progress
        self.version: str | None = None
        self.position = Position(0, 0.0)
        self.rows = 0

    def reset(self, version: str, position: Position) -> None:
        """Count from ``position`` (taken just before a check read its window)."""
        self.version, self.position, self.rows = version, position, 0

    def reached(self, version: str, target: int) -> bool:
        """Whether ``target`` rows of ``version`` were logged since the last reset."""
        if version != self.version:
            return False  # a new version is checked at once by the caller
        if self.rows < target:
            found = self.progress.rows_after(version, self.position, target - self.rows)
            self.rows += found.rows
            self.position = found.position
        return self.rows >= target
