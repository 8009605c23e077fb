"""MLflow stores for the tests: an embedded SQLite store under a fresh VIGIL_HOME (MLflow's
tables created once per session, then copied) with tracking turned back on."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def mlflow_db_template(tmp_path_factory):
    """An empty MLflow database: creating its tables takes 10-40 s on loaded cores."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-db") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_home(trained_home, mlflow_db_template, monkeypatch):
    """The trained home (a promoted default model) with an empty embedded MLflow store and
    tracking on."""
    root = trained_home / "mlflow"
    root.mkdir()
    shutil.copy(mlflow_db_template, root / "mlflow.db")
    monkeypatch.delenv("VIGIL_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return trained_home


@pytest.fixture
def settings(mlflow_home):
    from vigil.settings import get_settings

    return get_settings()
