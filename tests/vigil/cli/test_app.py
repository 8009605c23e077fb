"""``vigil``: every command of the contract's table, grouped help, examples, the version, and
each subcommand being the module command it replaces (same options)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from tests.support.processes import python_output
from vigil.cli.app import app
from vigil.cli.lazy import load_click

REPO = Path(__file__).resolve().parents[3]
# The contract's table: `vigil …` and the command it was.
COMMANDS = {
    "run": ("vigil.stack.run:main", None),
    "serve": ("service.__main__:cli", "serve"),
    "monitor": ("monitoring.drift:app", "run"),
    "check": ("monitoring.drift:app", "check"),
    "train": ("training.train:main", None),
    "register": ("training.register:main", None),
    "retrain": ("training.retrain:main", None),
    "promote": ("training.promote:main", None),
    "models": ("training.models:cli", None),
    "traffic": ("vigil.stack.traffic:main", None),
    "db": ("vigil.store.db:app", None),
    "keys": ("vigil.cli.keys:app", None),
    "render": (None, None),
    "trigger": ("training.trigger:main", None),
}
WITH_EXAMPLES = ("train", "register", "serve", "check", "promote")


def command():
    return typer.main.get_command(app)


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args), prog_name="vigil")
    assert "Traceback" not in result.output, result.output
    return result


def test_help_lists_every_command_in_panels_with_one_line_each():
    result = invoke("--help")
    assert result.exit_code == 0, result.output
    group = command()
    assert set(group.commands) == set(COMMANDS)
    for panel in ("Run the loop", "Models", "Operate"):
        assert panel in result.output
    for name, sub in group.commands.items():
        assert f"│ {name} " in result.output, name
        assert sub.short_help and "\n" not in sub.short_help, name


def test_version_is_the_installed_distributions():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"vigil {version('vigil')}"


@pytest.mark.parametrize("name", [n for n in COMMANDS if COMMANDS[n][0]])
def test_each_command_has_the_old_commands_options(name):
    target, sub = COMMANDS[name]
    mounted = command().commands[name].load()
    old = load_click(target, sub)
    assert [p.opts for p in mounted.params] == [p.opts for p in old.params]
    assert [p.default for p in mounted.params] == [p.default for p in old.params]
    assert mounted.help == old.help
    result = invoke(name, "--help")
    assert result.exit_code == 0, result.output
    assert f"Usage: vigil {name}" in result.output


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_first_commands_show_examples(name):
    result = invoke(name, "--help")
    assert "Examples" in result.output
    assert f"vigil {name}" in result.output.split("Examples", 1)[1]


def test_render_lists_its_renderers():
    result = invoke("render", "--help")
    assert result.exit_code == 0, result.output
    for name in ("configs", "k8s", "dashboards", "config-docs"):
        assert f"│ {name} " in result.output


def test_models_mounts_the_whole_registry_app():
    result = invoke("models", "--help")
    for name in ("list", "show", "shadow", "canary", "follow-mlflow"):
        assert f"│ {name} " in result.output, result.output


def test_keys_keygen_prints_a_usable_pair():
    from vigil.registry.signing import sign, verify

    result = invoke("keys", "keygen")
    assert result.exit_code == 0, result.output
    lines = dict(line.split("  #")[0].split("=", 1) for line in result.output.splitlines())
    private, public = lines["VIGIL_MODEL_SIGNING_KEY"], lines["VIGIL_MODEL_VERIFY_KEY"]
    assert len(base64.b64decode(private)) == 32
    signature = sign(private, "vigil-model:x", {"a": "00"})
    assert verify(public, "vigil-model:x", {"a": "00"}, signature, required=True) == "verified"


def test_exit_codes_are_the_old_commands(vigil_home):
    # promote: a TAG and --rollback together is a usage error (2), no production model is 3.
    assert invoke("promote", "vigil-model:x", "--rollback").exit_code == 2
    result = invoke("check", "--json")
    assert result.exit_code == 2
    assert "no production model" in result.output


def test_unknown_command_is_one_usage_error():
    result = invoke("nosuch")
    assert result.exit_code == 2
    assert "No such command 'nosuch'" in result.output


@pytest.mark.integration
def test_help_does_not_import_the_heavy_libraries():
    code = (
        "import sys; from vigil.cli.app import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('sklearn', 'bentoml', 'evidently', 'pandas') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    assert "HEAVY []" in python_output(code)


def _complete(words: str) -> list[str]:
    env = {**os.environ, "_VIGIL_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - 1)}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "vigil"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return sorted(proc.stdout.split())


@pytest.mark.integration
def test_shell_completion_completes_commands_and_their_options():
    assert _complete("vigil mo") == ["models", "monitor"]
    assert _complete("vigil check --fail") == ["--fail-on-drift"]


def test_a_missing_optional_package_is_one_line_with_the_fix(capsys):
    from typer import Exit

    from vigil.cli.lazy import LazyCommand

    command = LazyCommand("x", "no_such_package_here.module:main", help="x", needs="pip install y")
    with pytest.raises(Exit) as exited:
        command.load()
    assert exited.value.exit_code == 1
    assert capsys.readouterr().err == (
        "error: `x` needs the Python package no_such_package_here: pip install y\n"
    )
    # Vigil's own modules failing to import is a bug to see whole, not an install hint.
    own = LazyCommand("x", "vigil.no_such_module:main", help="x", needs="pip install y")
    with pytest.raises(ModuleNotFoundError):
        own.load()
