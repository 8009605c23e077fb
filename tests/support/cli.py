"""Run a command as ``python -m <module> ARGS`` does, in this process (``runpy``, the way
``-m`` runs a module, with Click's ``CliRunner`` isolation capturing its output and setting its
environment) or, for a command's one smoke test of its real entry point, in a subprocess.

    out = run_command("training.promote", tag, "--expect", first, home=home)
    assert out.returncode == 0, out.stderr

Both ways return the same ``Ran`` (``returncode``, ``stdout``, ``stderr``, as
``subprocess.CompletedProcess`` has) and see the same settings: only the ``VIGIL_*`` variables
given (``home=...`` is ``VIGIL_HOME``), none from the test process or a ``.env``. In process,
an exception that escapes the command is a traceback on stderr and exit code 1, as the
interpreter would make it, so ``"Traceback" not in out.stderr`` still means something.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import traceback
import warnings
from dataclasses import dataclass

from click.testing import CliRunner

from tests.support.processes import REPO, base_env, hidden_variable, vigil_env


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


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
    code: object = 0
    stderr_extra = ""
    with CliRunner().isolation(env=env) as (stdout, stderr, _):
        argv = sys.argv
        sys.argv = [module, *args]
        try:
            with warnings.catch_warnings():
                # The test imported the module already; ``python -m`` would not have.
                warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
                runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            code = exc.code
        except Exception as exc:  # noqa: BLE001 - the interpreter's report of it
            code, stderr_extra = 1, "".join(traceback.format_exception(exc))
        finally:
            sys.argv = argv
            sys.stdout.flush()
            sys.stderr.flush()
        out, err = stdout.getvalue().decode(), stderr.getvalue().decode() + stderr_extra
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): printed, exit code 1
        code, err = 1, f"{err}{code}\n"
    return Ran(code, out, err)
