"""The warning at start when the API is open beyond this machine."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.auth import open_endpoints_warning
from tests.support.processes import REPO, base_env


def test_open_endpoints_are_warned_of_only_beyond_loopback_without_a_key():
    assert "VIGIL_API_KEY is not set" in open_endpoints_warning("0.0.0.0", keyed=False)
    assert open_endpoints_warning("10.1.2.3", keyed=False)
    assert open_endpoints_warning("vigil.example.com", keyed=False)
    assert open_endpoints_warning("0.0.0.0", keyed=True) is None
    for host in ("127.0.0.1", "::1", "localhost"):
        assert open_endpoints_warning(host, keyed=False) is None


@pytest.mark.integration
def test_serve_prints_the_warning_at_start(tmp_path):
    """Printed before anything else is checked (this home has no model: it then exits 1)."""
    env = base_env(home=tmp_path / "home")
    out = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--host", "0.0.0.0", "--port", "1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "warning: /predict and /feedback are open" in out.stderr, out.stderr
    env["VIGIL_API_KEY"] = "k" * 32
    keyed = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--host", "0.0.0.0", "--port", "1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "are open" not in keyed.stderr, keyed.stderr
