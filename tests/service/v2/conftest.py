"""Homes holding one promoted model of each kind the protocol must serve, trained by
``training.train`` on data that ships with scikit-learn: a multiclass classifier (``wine``,
3 classes) and a regressor (``diabetes``). The binary classifier (breast cancer) and the
mixed-feature classifier (text classes, categories) come from the shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


def _train(tmp_path_factory, dataset: str) -> Path:
    from training.data import load
    from training.train import train
    from vigil.settings import get_settings

    home = tmp_path_factory.mktemp(f"{dataset}-home")
    outcome = train(
        get_settings(home=home), load(None, None, dataset=dataset), n_estimators=20, promote=True
    )
    assert outcome.promoted, outcome
    return home


@pytest.fixture(scope="session")
def wine_home_template(tmp_path_factory) -> Path:
    return _train(tmp_path_factory, "wine")


@pytest.fixture(scope="session")
def diabetes_home_template(tmp_path_factory) -> Path:
    return _train(tmp_path_factory, "diabetes")
