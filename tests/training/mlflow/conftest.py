"""MLflow stores for the tests: an embedded SQLite store under a fresh VIGIL_HOME (MLflow's
tables created once per session, then copied) with tracking turned back on."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

# Memory-backed where the machine has it: MLflow's migrations commit one by one, and each
# commit waiting on the disk made up most of the 10-40 s the tables took on loaded cores.
SCRATCH = Path("/dev/shm")


@pytest.fixture(scope="session")
def mlflow_db_template(trained_homes):
    """An empty MLflow database, made once per run for every xdist worker (each gets a copy)."""
    return trained_homes.get("mlflow-db", _create_mlflow_db) / "mlflow.db"


def _create_mlflow_db(folder: Path) -> None:
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(dir=SCRATCH if SCRATCH.is_dir() else None) as scratch:
        path = Path(scratch) / "mlflow.db"
        MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
        shutil.copy(path, folder / "mlflow.db")


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
