"""The report's estimated-quality and data-quality tables (issue 20), from the check's JSON."""

from __future__ import annotations

import html


def _e(value) -> str:  # feature names come from data
    return html.escape(str(value))


def _share(value) -> str:
    return "—" if value is None else f"{value:.1%}"


def _number(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def quality_tables(summary: dict) -> str:
    """HTML for the ``estimated_quality`` and ``data_quality`` parts; empty without them."""
    parts = []
    estimated = summary.get("estimated_quality")
    if estimated:
        rows = "".join(
            f"<tr><td>{_e(m)}</td><td>{value:.4f}</td><td>{_number(estimated.get(m + '_se'))}</td>"
            "</tr>"
            for m, value in estimated.items()
            if not m.endswith("_se") and value is not None
        )
        note = summary.get("estimated_quality_note") or ""
        parts.append(
            "<h3>Estimated quality (no labels)</h3>"
            f"<p>{_e(note)}. Assumes P(y|x) unchanged and inputs inside the training support "
            "(docs/runbook.md, Estimated quality).</p>"
            "<table border=1 cellpadding=4 style='border-collapse:collapse'>"
            f"<tr><th>metric</th><th>estimate</th><th>standard error</th></tr>{rows}</table>"
        )
    quality = summary.get("data_quality")
    if quality:
        rows = "".join(
            f"<tr{' style=background:#fde2e1' if q['flagged'] else ''}><td>{_e(name)}</td>"
            f"<td>{_share(q['missing_share'])}</td><td>{_share(q['out_of_range_share'])}</td>"
            f"<td>{_share(q['unseen_share'])}</td>"
            f"<td>{_e(', '.join(q.get('flagged_checks') or [])) or 'no'}</td></tr>"
            for name, q in quality.items()
        )
        parts.append(
            "<h3>Data quality</h3>"
            "<p>Exact one-sided tests against the reference, corrected across features and "
            "checks like drift.</p>"
            "<table border=1 cellpadding=4 style='border-collapse:collapse'><tr><th>feature</th>"
            "<th>missing</th><th>out of range</th><th>unseen</th><th>flagged</th></tr>"
            f"{rows}</table>"
        )
    return "".join(parts)
