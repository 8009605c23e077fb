"""Planning a window of the newest N rows over per-request records (no database)."""

from __future__ import annotations

import numpy as np

from vigil.log.window import newest_records_needed, plan_window


def rows_of(plan, sizes):
    """Each planned row as (record, offset)."""
    del sizes
    return list(zip(plan.records.tolist(), plan.offsets.tolist(), strict=True))


def test_the_fewest_newest_records_that_hold_n_rows():
    newest_first = np.array([3, 5, 2, 10])
    assert newest_records_needed(newest_first, 1) == 1
    assert newest_records_needed(newest_first, 3) == 1
    assert newest_records_needed(newest_first, 4) == 2
    assert newest_records_needed(newest_first, 10) == 3
    assert newest_records_needed(newest_first, 11) == 4
    assert newest_records_needed(newest_first, 1_000) == 4  # all there are


def test_the_oldest_record_is_cut_keeping_its_newest_rows():
    sizes = np.array([4, 2, 3])  # oldest first
    plan = plan_window(sizes, 6)
    assert plan.total_rows == 6 and not plan.sampled
    assert rows_of(plan, sizes) == [(0, 3), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)]
    whole = plan_window(sizes, 100)
    assert whole.total_rows == 9 and len(whole.records) == 9


def test_a_sample_is_uniform_over_the_window_rows_not_the_records():
    sizes = np.array([1] * 500 + [500])  # half the rows in one record
    plan = plan_window(sizes, 1_000, max_rows=200, seed=1)
    assert plan.sampled and plan.total_rows == 1_000 and len(plan.records) == 200
    pairs = rows_of(plan, sizes)
    assert len(set(pairs)) == 200 and pairs == sorted(pairs)  # distinct, oldest first
    in_big_record = sum(record == 500 for record, _ in pairs)
    assert 70 < in_big_record < 130  # about half, not 1 in 501
    assert all(0 <= offset < sizes[record] for record, offset in pairs)


def test_an_empty_log_is_an_empty_window():
    plan = plan_window(np.array([], dtype=np.int64), 10, max_rows=5)
    assert plan.total_rows == 0 and not plan.sampled and len(plan.records) == 0
