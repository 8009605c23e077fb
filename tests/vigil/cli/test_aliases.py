"""The module paths ``vigil`` replaced still work for this release (deprecated aliases): each
answers ``--help`` as ``python -m <alias> --help`` does, in this process; one of them from a
real process, as tools built against them call it."""

from __future__ import annotations

import pytest

from tests.support.cli import run_command

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


@pytest.mark.parametrize("alias", ALIASES)
def test_alias_answers_help(alias):
    ran = run_command(alias, "--help")
    assert ran.returncode == 0, ran.stderr
    assert ALIASES[alias] in ran.stdout, ran.stdout


@pytest.mark.integration
def test_an_alias_answers_help_from_a_process_of_its_own():
    ran = run_command("stack.run", "--help", subprocess_=True)
    assert ran.returncode == 0, ran.stderr
    assert ALIASES["stack.run"] in ran.stdout, ran.stdout
