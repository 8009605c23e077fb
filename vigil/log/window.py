"""Which logged instances make up a window of the newest N rows, given per-request records.

The log stores one record per request; a window counts instances. Its oldest record may hold
more rows than the window still needs: then only that record's newest (last) rows are in. A
window larger than ``max_rows`` is a uniform sample of its rows, drawn here so that only the
records holding a drawn row need to be read. Pure numpy, no database.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowPlan:
    """Rows of the window, oldest first: ``records[i]`` is an index into the records passed to
    ``plan_window`` (oldest first) and ``offsets[i]`` the row's position inside that record."""

    records: np.ndarray
    offsets: np.ndarray
    total_rows: int
    sampled: bool


def newest_records_needed(rows_newest_first: np.ndarray, n: int) -> int:
    """How many of the newest records hold the newest ``n`` rows (all of them if fewer)."""
    reach = np.cumsum(rows_newest_first)
    return min(len(reach), int(np.searchsorted(reach, n, side="left")) + 1)


def plan_window(
    rows_oldest_first: np.ndarray, n: int, max_rows: int | None = None, seed: int = 0
) -> WindowPlan:
    """The newest ``n`` rows of records holding ``rows_oldest_first`` rows each (the records
    must be those ``newest_records_needed`` chose), sampled down to ``max_rows``."""
    rows = np.asarray(rows_oldest_first, dtype=np.int64)
    ends = np.cumsum(rows)
    held = int(ends[-1]) if len(ends) else 0
    total = min(n, held)
    sampled = max_rows is not None and total > max_rows
    if sampled:
        # Uniform over the window's rows, as reading every row and keeping max_rows would be.
        picked = np.random.default_rng(seed).choice(total, size=max_rows, replace=False)
        positions = np.sort(picked)
    else:
        positions = np.arange(total, dtype=np.int64)
    # Rows before the window's first are the oldest record's oldest ones: skip them.
    positions = positions + (held - total)
    records = np.searchsorted(ends, positions, side="right")
    offsets = positions - (ends[records] - rows[records])
    return WindowPlan(records=records, offsets=offsets, total_rows=total, sampled=sampled)
