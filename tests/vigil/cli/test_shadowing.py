"""A user's module named like one of Vigil's packages is a one-line error, not a silent swap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.processes import base_env
from vigil.cli.app import app
from vigil.cli.shadowing import TOP_LEVEL, shadowing


def test_vigils_own_packages_are_not_shadowing(tmp_path):
    assert shadowing(cwd=tmp_path) is None


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_a_module_of_the_same_name_is_named(tmp_path, name):
    (tmp_path / f"{name}.py").write_text("x = 1\n")
    problem = shadowing(cwd=tmp_path)
    assert problem is not None
    assert str(tmp_path / f"{name}.py") in problem and f"`{name}`" in problem
    assert "\n" not in problem and "rename it" in problem


def test_a_package_of_the_same_name_is_named(tmp_path):
    (tmp_path / "monitoring").mkdir()
    (tmp_path / "monitoring" / "__init__.py").write_text("")
    assert f"{tmp_path / 'monitoring'} shadows" in shadowing(cwd=tmp_path)


def test_the_command_refuses_before_doing_anything(tmp_path, monkeypatch, vigil_home):
    (tmp_path / "training.py").write_text("raise SystemExit('the user module ran')\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", "--promote"])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert "shadows Vigil's `training` package" in result.output
    assert not list(vigil_home.iterdir())  # nothing trained


@pytest.mark.integration
def test_the_installed_script_refuses_too(tmp_path):
    (tmp_path / "service.py").write_text("print('the user module ran')\n")
    script = Path(sys.executable).with_name("vigil")
    proc = subprocess.run(
        [str(script), "serve"], cwd=tmp_path, env=base_env(home=tmp_path / "home"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'service.py'} shadows Vigil's `service` package (Vigil owns the "
        "import names vigil, service, training, monitoring): rename it, or run vigil from "
        "another directory"
    ]
