"""Open MLflow's UI on Vigil's MLflow store: ``make experiments``.

    python -m training.mlflow.ui [--port 5000]

The embedded store (a SQLite database under ``VIGIL_HOME``, artifacts beside it) unless
``VIGIL_MLFLOW_TRACKING_URI`` (or ``MLFLOW_TRACKING_URI``) names a server, which has its own
UI. Needs the full ``mlflow`` (the dev group: ``make install``); Ctrl-C stops it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer


def main(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the UI")] = 5000,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
) -> None:
    """Serve MLflow's UI on the experiments and models Vigil recorded."""
    from training.mlflow.store import store_for
    from vigil.settings import get_settings

    store = store_for(get_settings())
    if store is None:
        typer.echo("error: MLflow is off (VIGIL_MLFLOW_TRACKING_URI=off)", err=True)
        raise typer.Exit(2)
    if not store.embedded:
        typer.echo(f"MLflow runs on a server of its own: open {store.display_uri}")
        return
    binary = Path(sys.executable).parent / "mlflow"
    if not binary.is_file():
        typer.echo("error: the MLflow UI needs the full mlflow package (make install)", err=True)
        raise typer.Exit(2)
    artifacts = store.artifact_location.removeprefix("file://")
    Path(artifacts).mkdir(parents=True, exist_ok=True)
    typer.echo(f"MLflow UI on http://{host}:{port} (store {store.display_uri}); Ctrl-C stops it")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    argv = [str(binary), "server", "--host", host, "--port", str(port), "--workers", "1",
            "--backend-store-uri", store.tracking_uri,
            "--artifacts-destination", artifacts]  # fmt: skip
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    sys.exit(typer.run(main))
