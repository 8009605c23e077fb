"""What starting a server imports before any model is loaded: the launcher
(``python -m service serve``, which reads the production pointer) and BentoML's arbiter (which
imports ``service.app`` for the service's definition) make no data frame and fit nothing, so
they load neither pandas (with pyarrow) nor scikit-learn. Each costs every start about a third
of a second of CPU per process, and replicas start often."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration  # a new interpreter: a clean sys.modules

HEAVY = ("pandas", "pyarrow", "sklearn", "evidently")


@pytest.mark.parametrize(
    "imports",
    [
        "import service.app",
        "import service.__main__, service.auth, vigil.registry.store, vigil.settings",
    ],
    ids=["arbiter", "launcher"],
)
def test_starting_a_server_imports_no_frame_library(imports):
    code = f"import sys\n{imports}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
