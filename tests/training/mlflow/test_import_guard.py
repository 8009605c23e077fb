"""The service and the monitor never import MLflow, and the image installs no MLflow server."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import REPO, base_env

ENTRY_MODULES = ("service.app", "monitoring.drift", "monitoring.monitor", "monitoring.leader")


def _python(code: str) -> str:
    """stdout of ``code`` run in a fresh interpreter (fails on a non-zero exit)."""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=base_env(), capture_output=True,
        text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


@pytest.mark.integration
def test_service_and_monitor_start_without_importing_mlflow():
    code = (
        "import importlib, sys\n"
        f"for name in {ENTRY_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.')))\n"
    )
    assert _python(code) == "[]"


@pytest.mark.integration
def test_the_commands_import_mlflow_only_when_they_use_it():
    code = (
        "import sys\n"
        "import training.train, training.register, training.retrain, training.promote\n"
        "import training.models, training.mlflow.tracking, training.mlflow.aliases\n"
        "print('mlflow' in sys.modules)\n"
    )
    assert _python(code) == "False"


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
