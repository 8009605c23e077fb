"""Saved report names sort by the time of their check, to the microsecond."""

from __future__ import annotations

from monitoring.report_store import is_report_name, report_name


def test_a_fraction_that_rounds_up_carries_the_second():
    earlier = report_name("vigil-model:a", 1_700_000_000.5)
    newest = report_name("vigil-model:a", 1_700_000_000.9999996)
    assert newest == "drift-20231114T221321.000000Z-vigil-model_a.html"
    assert sorted([newest, earlier]) == [earlier, newest]
    assert is_report_name(newest)


def test_names_keep_microseconds_and_sort_by_time():
    times = [1_700_000_000 + k * 0.123457 for k in range(20)]
    names = [report_name("vigil-model:a", t) for t in times]
    assert sorted(names) == names
    assert names[1] == "drift-20231114T221320.123457Z-vigil-model_a.html"
