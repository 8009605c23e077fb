"""``python -m service serve [--host H] [--port P] [--workers N]``: run the prediction service.

Reads the settings, points BentoML at the model store under VIGIL_HOME, then runs
``bentoml serve service.app:VigilService`` from the repository root (BentoML 1.4 has no
``--workers`` flag: the worker count reaches the service through VIGIL_WORKERS). SIGINT and
SIGTERM are passed on, and the exit code is BentoML's.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

ROOT = Path(__file__).resolve().parents[1]
cli = typer.Typer(add_completion=False, no_args_is_help=True)


@cli.callback()
def main() -> None:
    """The Vigil prediction service."""


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address [VIGIL_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [VIGIL_PORT]")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="Worker processes [VIGIL_WORKERS]")
    ] = None,
) -> None:
    """Serve the production model: /predict, /feedback, /model, /metrics, /livez, /readyz."""
    from pydantic import ValidationError

    from service.auth import open_endpoints_warning
    from vigil.registry.store import Registry, RegistryError
    from vigil.settings import get_settings, settings_problem

    overrides = {"host": host, "port": port, "workers": workers}
    try:
        settings = get_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        # Refused before any worker starts (a worker that cannot start is restarted forever).
        typer.echo(f"error: {settings_problem(exc)}", err=True)
        raise typer.Exit(2) from None
    warning = open_endpoints_warning(settings.host, settings.api_key is not None)
    if warning:
        typer.echo(warning, err=True)
    # The registry is in the database (VIGIL_DATABASE_URL): an empty VIGIL_HOME is fine.
    try:
        tag = Registry(settings).production_tag()
    except RegistryError as exc:
        # Unreachable now: start anyway, alive but not ready; the workers retry (a database
        # that comes back is a service that becomes ready, without a restart loop).
        typer.echo(f"warning: {exc}; starting, not ready until it answers", err=True)
        tag = ""
    if tag is None:
        typer.echo(
            "error: no production model in the registry; "
            "run `vigil train --promote` (make train) first",
            err=True,
        )
        raise typer.Exit(1)
    settings.apply_bentoml_env()
    # The workers read their settings from the environment: hand them the resolved values.
    env = {
        **os.environ,
        "BENTOML_HOME": str(server_home(settings)),
        "VIGIL_HOME": str(settings.home_dir),
        "VIGIL_HOST": settings.host,
        "VIGIL_PORT": str(settings.port),
        "VIGIL_WORKERS": str(settings.workers),
    }
    argv = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "service.app:VigilService",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
    ]
    code = run(argv, env)
    # The process ends next: a last collection of every object the imports made would only
    # delay the exit a process manager is waiting for.
    gc.freeze()
    raise typer.Exit(code)


def server_home(settings) -> Path:
    """BentoML's home for one server. ``bentoml serve`` wipes the Prometheus files under its
    home at start, so two servers on one VIGIL_HOME (replicas on a host) each get their own;
    models are read from ``settings.bentoml_home`` explicitly, not through BENTOML_HOME."""
    return settings.bentoml_home / "servers" / str(settings.port)


def run(argv: list[str], env: dict[str, str]) -> int:
    """Run ``argv`` in our process group (a kill of the group reaches it), forwarding SIGINT
    and SIGTERM, and return its exit code."""
    proc = subprocess.Popen(argv, cwd=ROOT, env=env)

    def forward(signum, _frame) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    while True:
        try:
            code = proc.wait()
            break
        except KeyboardInterrupt:  # pragma: no cover - the handler replaces it
            continue
    # A child killed by a signal reports -N; exit like a shell would.
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    cli()
