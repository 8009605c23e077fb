"""vigil's public API: every name it declares resolves, and importing it does no work."""

from __future__ import annotations

import pytest

import vigil
from tests.support.processes import python_output


@pytest.mark.parametrize("name", vigil.__all__)
def test_every_public_name_resolves(name):
    assert getattr(vigil, name) is not None
    assert name in dir(vigil)


def test_the_api_holds_the_core_names():
    assert {"get_settings", "Settings", "Registry", "InferenceLog", "task_for"} <= set(
        vigil.__all__
    )
    assert vigil.Registry.__module__ == "vigil.registry.store"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        vigil.nothing  # noqa: B018


@pytest.mark.integration  # a new interpreter: a clean sys.modules
def test_importing_vigil_or_a_package_imports_nothing_heavy():
    code = (
        "import sys, vigil, vigil.log, vigil.registry, vigil.store, vigil.tasks\n"
        "print(sorted(m for m in ('sqlalchemy', 'pandas', 'numpy', 'alembic') if m in sys.modules))"
    )
    assert python_output(code) == "[]"
