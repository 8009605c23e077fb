"""Fixtures of the monitoring tests."""

from __future__ import annotations

import pytest

from vigil.log.inference_log import InferenceLog
from vigil.registry.store import Registry
from vigil.settings import get_settings


@pytest.fixture
def production(trained_home):
    """``(settings, log, bundle)``: the trained home's settings, its inference log (schema
    created) and its production model."""
    settings = get_settings()
    log = InferenceLog.from_settings(settings)
    log.create_schema()
    yield settings, log, Registry(settings).load_production()
    log.close()
