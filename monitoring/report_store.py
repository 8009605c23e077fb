"""Saved drift reports: their names, the newest, and retention (``reports_keep``).

Names start with the UTC time of the check, so sorting by name is sorting by age, and only
names of this shape are ever listed, served or deleted.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

PREFIX = "drift-"
_NAME = re.compile(r"^drift-[A-Za-z0-9._-]+\.html$")


def report_name(model_version: str, when: float) -> str:
    # Whole microseconds first, then split: formatting the fraction alone would print
    # 0.9999996 s as .000000 without carrying the second, sorting the newest report first.
    seconds, micros = divmod(round(when * 1_000_000), 1_000_000)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds)) + f".{micros:06d}"
    return f"{PREFIX}{stamp}Z-{re.sub(r'[^A-Za-z0-9._-]', '_', model_version)}.html"


def list_reports(reports_dir: Path) -> list[Path]:
    """Saved reports, oldest first (names start with a UTC timestamp)."""
    if not reports_dir.is_dir():
        return []
    return sorted(p for p in reports_dir.iterdir() if _NAME.match(p.name))


def latest_report(reports_dir: Path) -> Path | None:
    reports = list_reports(reports_dir)
    return reports[-1] if reports else None


def prune_reports(reports_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` reports (and temp files a crash left behind)."""
    removed = list_reports(reports_dir)[:-keep] if keep > 0 else list_reports(reports_dir)
    if reports_dir.is_dir():
        removed += [
            p for p in reports_dir.glob(".tmp-*.html") if time.time() - p.stat().st_mtime > 3600
        ]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def is_report_name(name: str) -> bool:
    return bool(_NAME.match(name))
