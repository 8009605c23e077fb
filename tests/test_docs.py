"""The README and docs/: every relative link resolves, every page is in the index, and no page
names a tracker's issue numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = [link for link in LINK.findall(page.read_text()) if not (page.parent / link).exists()]
    assert not broken, f"{page.name}: {broken}"


def test_every_docs_page_is_in_the_index():
    index = (REPO / "docs" / "index.md").read_text()
    listed = set(LINK.findall(index))
    pages = {p.name for p in PAGES if p.parent.name == "docs" and p.name != "index.md"}
    assert pages <= listed, pages - listed


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_issue_numbers(page):
    assert not re.search(r"\bissues? #?\d+|(?<![\w&/])#\d{1,4}\b", page.read_text()), page.name


def test_readme_is_a_front_page():
    assert len((REPO / "README.md").read_text().splitlines()) <= 230
