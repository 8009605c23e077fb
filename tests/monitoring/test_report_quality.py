"""The report's estimated-quality and data-quality tables."""

from __future__ import annotations

from monitoring.report_quality import quality_tables


def test_tables_show_estimates_and_flags_and_escape_names():
    summary = {
        "estimated_quality": {"accuracy": 0.91, "accuracy_se": 0.012, "roc_auc": None,
                              "roc_auc_se": None},
        "estimated_quality_note": "estimated accuracy unchanged within ±0.036",
        "data_quality": {
            "<b>x</b>": {"missing_share": 0.1, "out_of_range_share": 0.0, "unseen_share": None,
                         "flagged": True, "flagged_checks": ["missing"]},
        },
    }  # fmt: skip
    page = quality_tables(summary)
    assert "0.9100" in page and "0.0120" in page and "roc_auc" not in page
    assert "unchanged within ±0.036" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "10.0%" in page and "missing" in page and "background:#fde2e1" in page


def test_no_tables_without_the_parts():
    assert quality_tables({}) == ""
