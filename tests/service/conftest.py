"""Fixtures for the service tests: a model with numeric and categorical features, homes to
serve from, and request bodies."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

API_KEY = "test-key-123"
MIXED_TARGET = "churned"


def mixed_frame(n: int = 400, seed: int = 7) -> pd.DataFrame:
    """Two numeric and two categorical features (one with missing values), text labels."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, n).round(1)
    income = rng.lognormal(10, 0.5, n).round(2)
    plan = rng.choice(["basic", "plus", "pro"], n)
    region = rng.choice(["north", "south", "east", "west", None], n)
    score = (age - 40) / 12 + (plan == "basic") * 1.2 - (plan == "pro") + rng.normal(0, 0.5, n)
    age[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "plan": plan,
            "region": region,
            MIXED_TARGET: np.where(score > 0.3, "yes", "no"),
        }
    )


def mixed_instance(**overrides) -> dict:
    row = {"age": 35.0, "income": 25000.0, "plan": "plus", "region": "north"}
    row.update(overrides)
    return row


def train_mixed(home: Path, rows: int, seed: int, n_estimators: int) -> None:
    from training.data import check
    from training.train import train
    from vigil.settings import get_settings

    dataset = check(mixed_frame(rows, seed), MIXED_TARGET, "0" * 64, "test")
    outcome = train(get_settings(home=home), dataset, n_estimators=n_estimators, promote=True)
    assert outcome.promoted, outcome


@pytest.fixture(scope="session")
def mixed_home_template(trained_homes) -> Path:
    """A VIGIL_HOME with a promoted model of ``mixed_frame`` (small forest: fast to train)."""
    return trained_homes.get("mixed-home", train_mixed, rows=400, seed=7, n_estimators=20)


@pytest.fixture(scope="session")
def mixed_bundle(mixed_home_template):
    from vigil.registry.store import Registry
    from vigil.settings import get_settings

    return Registry(get_settings(home=mixed_home_template)).load_production()


@pytest.fixture(scope="session")
def default_bundle(trained_home_template):
    from vigil.registry.store import Registry
    from vigil.settings import get_settings

    return Registry(get_settings(home=trained_home_template)).load_production()


@pytest.fixture(scope="session")
def default_rows(default_bundle) -> list[dict]:
    """200 real instances of the default model (breast cancer), as JSON-able dicts."""
    frame = default_bundle.reference[default_bundle.schema.names].head(200)
    return frame.to_dict(orient="records")


def copy_home(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    return dest
