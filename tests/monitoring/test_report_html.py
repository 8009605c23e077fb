"""monitoring.report_html: logged values cannot end Evidently's data block, the page pins the
template's scripts by hash, and a page of another shape is refused rather than written."""

from __future__ import annotations

import json
import re

import pytest

from monitoring.report import summary_table
from monitoring.report_html import (
    TEMPLATE_SCRIPTS,
    UnsafeReport,
    escape_script_data,
    safe_evidently_page,
    script_hash,
)
from vigil.schema import FeatureSchema

HOSTILE = "</script><script>alert(1)</script><!--<script>\u2028\u2029&amp;"


def evidently_like(data: object) -> str:
    """A page of the shape Evidently 0.7's template writes, as it writes it (unescaped)."""
    payload = json.dumps(data, ensure_ascii=False)
    return (
        "\n<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='UTF-8'>\n"
        f"<script>\n    var d1 = {payload};\n    var additional_graphs_d1 = {{}};\n</script>\n"
        "</head>\n<body>\n<div id='root_d1'></div>\n<script>var global = globalThis</script>\n"
        "<script>/* lib */</script>\n<script>window.drawDashboard(d1)</script>\n</body></html>"
    )


def test_escaped_data_means_the_same_and_holds_no_markup():
    escaped = escape_script_data(json.dumps({"x": HOSTILE}, ensure_ascii=False))
    assert not re.search("[<>&\u2028\u2029]", escaped)
    assert json.loads(escaped) == {"x": HOSTILE}


def test_page_escapes_the_data_and_pins_the_template_scripts():
    page = safe_evidently_page(evidently_like({"x": HOSTILE}), "<p>banner</p>")
    assert "alert(1)</script>" not in page and page.count("<script>") == TEMPLATE_SCRIPTS
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)[1]
    scripts = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    hashes = set(re.findall(r"'sha256-[^']+'", policy.replace("&#x27;", "'")))
    assert hashes == {script_hash(s) for s in scripts}
    assert page.index("Content-Security-Policy") < page.index("<script>")  # before any script
    assert "<body>\n<p>banner</p>" not in page and "<body><p>banner</p>" in page


@pytest.mark.parametrize(
    "page",
    [
        "<html><head></head><body></body></html>",  # no data block
        evidently_like({}).replace("</body>", "<script>extra()</script></body>"),
    ],
)
def test_a_page_of_another_shape_is_refused(page):
    with pytest.raises(UnsafeReport):
        safe_evidently_page(page, "")


def test_summary_table_escapes_feature_names_and_notes():
    schema = FeatureSchema.from_dict(
        {"target": "y", "classes": [0, 1], "features": [{"name": HOSTILE, "kind": "numeric"}]}
    )
    feature = {
        "drifted": True,
        "method": "ks",
        "score_kind": "p_value",
        "score": None,
        "threshold": 0.01,
        "missing_share": 1.0,
        "note": HOSTILE,
    }
    summary = {
        "features": {HOSTILE: feature},
        "prediction_drift": None,
        "sampled": False,
        "model_version": HOSTILE,
        "checked_at": HOSTILE,
        "window_rows": 1,
        "reference_rows": 1,
        "drift_share": 1.0,
        "drift_detected": True,
    }
    table = summary_table(summary, schema)
    assert "<script" not in table and "&lt;/script&gt;" in table
