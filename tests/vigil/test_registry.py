"""The production pointer: exactly one production model, atomic, with rollback."""

from __future__ import annotations

import pytest

from vigil.registry import NoProductionModel, Registry
from vigil.settings import get_settings


def test_no_production_model_is_a_clear_error(vigil_home):
    registry = Registry(get_settings())
    assert registry.production_tag() is None
    with pytest.raises(NoProductionModel, match="make train"):
        registry.load_production()
    with pytest.raises(NoProductionModel):
        registry.rollback()


def test_promote_and_roll_back(trained_home):
    registry = Registry(get_settings())
    first = registry.production_tag()
    bundle = registry.load(first)
    second = registry.save(bundle.pipeline, bundle.contract, bundle.reference)
    assert second != first and registry.tags()[-1] == second
    registry.promote(second)
    assert registry.production_tag() == second
    assert registry.load_production().contract["tag"] == second
    assert registry.rollback() == first
    assert registry.production_tag() == first
    assert not list(trained_home.glob(".production.*"))  # no temp files left behind


def test_promoting_an_unknown_tag_fails(trained_home):
    registry = Registry(get_settings())
    before = registry.production_tag()
    with pytest.raises(Exception, match="not found"):
        registry.promote("vigil-model:doesnotexist")
    assert registry.production_tag() == before
