"""The service role's GRANTs: what docs/deploy.md shows is what the build prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vigil.store.roles import service_grants

DEPLOY_DOC = Path(__file__).resolve().parents[3] / "docs" / "deploy.md"


def test_the_documented_grants_are_the_built_ones():
    (block,) = re.findall(r"```sql\n(.*?)```", DEPLOY_DOC.read_text(), re.S)
    documented = [line.rstrip(";") for line in block.strip().splitlines()]
    assert documented == service_grants("vigil_", "vigil_service")
    assert not [g for g in documented if re.search(r"DELETE|CREATE|ALL|TRUNCATE", g)]


def test_names_that_cannot_be_quoted_safely_are_refused():
    for role, prefix in (('x"; DROP TABLE y; --', "vigil_"), ("vigil_service", 'a"b')):
        with pytest.raises(ValueError):
            service_grants(prefix, role)
