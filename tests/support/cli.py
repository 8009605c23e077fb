"""Run a command as ``python -m <module> ARGS`` would, in this process (Typer's ``CliRunner``)
or, for a command's one smoke test of its real entry point, in a subprocess.

    out = run_command("training.promote", tag, "--expect", first, home=home)
    assert out.returncode == 0, out.stderr

Both ways return the same ``Ran`` (``returncode``, ``stdout``, ``stderr``, as
``subprocess.CompletedProcess`` has) and see the same settings: only the ``VIGIL_*`` variables
given (``home=...`` is ``VIGIL_HOME``), none from the test process or a ``.env``. In process,
an exception that escapes the command is a traceback on stderr and exit code 1, as the
interpreter would make it, so ``"Traceback" not in out.stderr`` still means something.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass

import typer
from typer.testing import CliRunner

from tests.support.processes import REPO, base_env, hidden_variable, vigil_env


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def typer_app(module: str) -> typer.Typer:
    """The app ``python -m module`` runs: the module's Typer app, or its ``main`` wrapped the
    way ``typer.run(main)`` wraps it."""
    loaded = importlib.import_module(module)
    if hasattr(loaded, "__path__"):  # a package runs its __main__
        loaded = importlib.import_module(f"{module}.__main__")
    for name in ("app", "cli"):
        if isinstance(app := getattr(loaded, name, None), typer.Typer):
            return app
    app = typer.Typer(add_completion=False)
    app.command()(loaded.main)
    return app


def run_command(module: str, *args: str, subprocess_: bool = False, **vigil: object) -> Ran:
    """``python -m module *args`` with ``vigil`` as its ``VIGIL_<NAME>`` settings."""
    if subprocess_:
        done = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=REPO, env=base_env(**vigil), capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        return Ran(done.returncode, done.stdout, done.stderr)
    env: dict[str, str | None] = {name: None for name in os.environ if hidden_variable(name)}
    env.update(vigil_env(**vigil))
    result = CliRunner().invoke(typer_app(module), list(args), env=env)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return Ran(result.exit_code, result.stdout, stderr)
