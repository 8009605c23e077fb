"""The module paths ``vigil`` replaced still work for this release (deprecated aliases): each
answers ``--help`` from a real process, as tools built against them call it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import base_env

REPO = Path(__file__).resolve().parents[3]
# alias → a word its help must show
ALIASES = {
    "stack.run": "Usage",
    "service": "serve",
    "monitoring.drift": "check",
    "training.train": "--promote",
    "training.register": "--reference",
    "training.retrain": "--window-rows",
    "training.promote": "--rollback",
    "training.models": "canary",
    "stack.traffic": "--drift",
    "vigil.db": "upgrade",
    "vigil.signing": "keygen",
    "monitoring.render": "--committed",
    "deploy.render": "--check",
    "grafana.dashboards": "--out",
    "training.trigger": "--port",
}


@pytest.mark.integration
@pytest.mark.parametrize("alias", ALIASES)
def test_alias_answers_help(alias):
    proc = subprocess.run(
        [sys.executable, "-m", alias, "--help"],
        cwd=REPO, env=base_env(), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert ALIASES[alias] in proc.stdout, proc.stdout
