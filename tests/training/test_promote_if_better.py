"""``python -m training.promote TAG --if-better``: promotes only on a stored verdict that says
better with enough labeled rows; otherwise exit 1 with the figures, production unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.service import ROOT
from vigil.registry.candidates import Candidates, Verdict
from vigil.registry.store import Registry
from vigil.settings import get_settings


def promote(home, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VIGIL_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true",
           "VIGIL_ENV_FILE": "", "VIGIL_CANDIDATE_MIN_LABELED_ROWS": "200"}  # fmt: skip
    env.pop("VIGIL_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "training.promote", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_if_better_needs_a_better_verdict_on_enough_labeled_rows(trained_home):
    registry = Registry(get_settings())
    production = registry.production_tag()
    bundle = registry.load(production)
    tag = registry.save(bundle.pipeline, bundle.contract, bundle.reference)
    candidates = Candidates(registry)
    candidates.start(tag, "shadow")

    done = promote(trained_home, tag, "--if-better")
    assert done.returncode == 1 and "no live verdict" in json.loads(done.stdout)["reason"]

    def verdict(labeled: int, better):
        figures = {"labeled_rows": labeled, "better": better, "agreement": 0.97}
        candidates.record_verdict(Verdict(tag, production, "shadow", 1.0, labeled, better, figures))

    for labeled, better, why in (
        (150, True, "150 labeled rows"),
        (900, None, "undecided"),
        (900, False, "worse"),
    ):
        verdict(labeled, better)
        done = promote(trained_home, tag, "--if-better")
        out = json.loads(done.stdout)
        assert done.returncode == 1 and why in out["reason"], out
        assert out["verdict"]["labeled_rows"] == labeled  # the figures are printed
        assert Registry(get_settings()).production_tag() == production

    verdict(900, True)
    done = promote(trained_home, tag, "--if-better")
    assert done.returncode == 0, done.stdout + done.stderr
    assert Registry(get_settings()).production_tag() == tag
    assert not candidates.current().active  # the shadow of what is now production ended
