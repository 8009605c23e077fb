"""``training.promote`` refuses a model the service of this build cannot load, unless
``--force``: the replicas would keep the old one while the monitor checks the new one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.support.cli import Ran, run_command
from vigil.registry.store import Registry
from vigil.settings import get_settings

GONE_MODULE = '''
class Estimator:
    """Pickled by reference to this module, which the promoting process does not have."""
'''


def _promote(home: Path, *args: str, subprocess_: bool = False, **vigil: str) -> Ran:
    return run_command("training.promote", *args, home=home, subprocess_=subprocess_, **vigil)


def test_a_model_this_build_cannot_load_is_refused_unless_forced(trained_home, tmp_path):
    registry = Registry(get_settings(home=trained_home))
    production = registry.production_tag()
    bundle = registry.load(production)
    contract = {k: v for k, v in bundle.contract.items() if k not in ("onnx", "inference")}
    no_onnx = registry.save(bundle.pipeline, contract, bundle.reference)
    other_version = registry.save(
        bundle.pipeline,
        {**bundle.contract, "versions": {**bundle.contract["versions"], "scikit-learn": "0.24.2"}},
        bundle.reference,
    )
    (tmp_path / "gone_estimator.py").write_text(GONE_MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        import gone_estimator

        missing_module = registry.save(gone_estimator.Estimator(), contract, bundle.reference)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("gone_estimator", None)

    refused = {
        no_onnx: ("not_servable", {"inference": "onnx"}),
        other_version: ("version_mismatch", {}),
        missing_module: ("unpickle", {}),
    }
    for tag, (reason, vigil) in refused.items():
        out = _promote(trained_home, tag, **vigil)
        assert out.returncode == 2, (tag, out.stdout, out.stderr)
        assert f"{tag} cannot be served by this build ({reason}:" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
        assert registry.production_tag() == production
    # The same model is fine where it can be served (auto falls back to scikit-learn) ...
    assert _promote(trained_home, no_onnx, inference="auto").returncode == 0
    # ... and --force promotes even what cannot.
    forced = _promote(trained_home, missing_module, "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["production"] == missing_module


def test_a_second_rollback_says_the_stack_is_empty_and_how_to_go_forward(trained_home):
    registry = Registry(get_settings(home=trained_home))
    first = registry.production_tag()
    bundle = registry.load(first)
    second = registry.save(bundle.pipeline, bundle.contract, bundle.reference)
    assert _promote(trained_home, second).returncode == 0
    assert json.loads(_promote(trained_home, "--rollback").stdout)["production"] == first
    again = _promote(trained_home, "--rollback")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert f"the rollback stack is empty: production {first} has no model before it" in (
        again.stderr
    )
    assert f"`python -m training.promote {second}` makes it production again" in again.stderr


@pytest.mark.integration
def test_the_entry_point_promotes_and_prints_json(trained_home):
    registry = Registry(get_settings(home=trained_home))
    first = registry.production_tag()
    bundle = registry.load(first)
    second = registry.save(bundle.pipeline, bundle.contract, bundle.reference)
    out = _promote(trained_home, second, subprocess_=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"production": second, "previous": first}
