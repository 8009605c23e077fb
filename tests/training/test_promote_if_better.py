"""``python -m training.promote TAG --if-better``: promotes only on a stored verdict that says
better with enough labeled rows; otherwise exit 1 with the figures, production unchanged."""

from __future__ import annotations

import json

from tests.support.cli import Ran, run_command
from vigil.registry.candidates import Candidates, Verdict
from vigil.registry.store import Registry
from vigil.settings import get_settings


def promote(home, *args: str) -> Ran:
    return run_command("training.promote", *args, home=home, candidate_min_labeled_rows=200)


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
