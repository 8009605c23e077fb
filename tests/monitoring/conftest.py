"""Fixtures of the monitoring tests."""

from __future__ import annotations

import pytest

from tests.monitoring.generators import train_mixed
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


@pytest.fixture(scope="session")
def mixed_model_home(trained_homes):
    """``mixed_model_home(rows, into=None)``: a fresh copy of a home whose production model was
    trained on ``rows`` generated mixed-type rows (``generators.train_mixed``) once per run."""
    return lambda rows, into=None: trained_homes.get("mixed-model", train_mixed, into, rows=rows)
