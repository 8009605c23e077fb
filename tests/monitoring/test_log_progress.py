"""Counting new rows: incremental, bounded by the limit, per version."""

from __future__ import annotations

from tests.monitoring.generators import breast_cancer_rows, fill_log
from vigil.log.progress import LogProgress, NewRows


def test_new_rows_are_counted_from_the_position_and_bounded(production):
    settings, log, bundle = production
    progress = LogProgress(log)
    start = progress.newest(bundle.tag)
    assert start.id == 0
    fill_log(log, bundle, breast_cancer_rows(250, seed=1))
    found = progress.rows_after(bundle.tag, start, 1000)
    assert found.rows == 250 and found.position.id > 0
    assert progress.rows_after(bundle.tag, found.position, 1000).rows == 0
    assert progress.rows_after("other:v", start, 1000).rows == 0
    counter = NewRows(progress)
    counter.reset(bundle.tag, progress.newest(bundle.tag))
    assert not counter.reached(bundle.tag, 300)
    fill_log(log, bundle, breast_cancer_rows(200, seed=2))
    assert not counter.reached(bundle.tag, 300) or counter.rows >= 300
    fill_log(log, bundle, breast_cancer_rows(200, seed=3))
    assert counter.reached(bundle.tag, 300)
