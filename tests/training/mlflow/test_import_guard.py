"""The service and the monitor never import MLflow, and the image installs no MLflow server."""

from __future__ import annotations

import pytest

from tests.support.processes import REPO, python_output

ENTRY_MODULES = ("service.app", "monitoring.drift", "monitoring.monitor", "monitoring.leader")


@pytest.mark.integration
def test_service_and_monitor_start_without_importing_mlflow():
    code = (
        "import importlib, sys\n"
        f"for name in {ENTRY_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.')))\n"
    )
    assert python_output(code) == "[]"


@pytest.mark.integration
def test_the_commands_import_mlflow_only_when_they_use_it():
    code = (
        "import sys\n"
        "import training.train, training.register, training.retrain, training.promote\n"
        "import training.models, training.mlflow.tracking, training.mlflow.aliases\n"
        "print('mlflow' in sys.modules)\n"
    )
    assert python_output(code) == "False"


def test_the_image_requirements_hold_no_mlflow_server():
    """The Bento and the Dockerfile install from requirements.lock.txt / `uv sync --no-dev`:
    the tracking client (mlflow-skinny) only, not the server and UI (mlflow, gunicorn)."""
    pins = {
        line.split("==")[0]
        for line in (REPO / "requirements.lock.txt").read_text().splitlines()
        if "==" in line and not line.startswith(" ")
    }
    assert "mlflow-skinny" in pins
    assert not pins & {"mlflow", "gunicorn", "graphene", "flask-cors"}, pins & {"mlflow"}
