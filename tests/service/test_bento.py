"""`bentoml build` packs the service offline, with every dependency pinned from uv.lock."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements.lock.txt"
EXPORT = ["export", "--frozen", "--no-hashes", "--no-dev", "--no-emit-project", "--no-header"]


def _uv() -> str:
    local = Path(sys.executable).with_name("uv")
    found = str(local) if local.exists() else shutil.which("uv")
    if not found:
        pytest.skip("needs uv (installed in .venv by `make install`)")
    return found


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.split("[")[0].strip().lower()] = version.split(";")[0].strip()
    return pins


@pytest.mark.integration
def test_requirements_file_matches_uv_lock():
    """requirements.lock.txt is what `uv export` makes of uv.lock today (reads the lock only)."""
    result = subprocess.run([_uv(), *EXPORT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert _pins(REQUIREMENTS.read_text()) == _pins(result.stdout), (
        "requirements.lock.txt is stale; regenerate it with: "
        f"uv {' '.join(EXPORT)} -o requirements.lock.txt"
    )


@pytest.mark.integration
def test_bentoml_build_makes_a_pinned_bento(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VIGIL_", "BENTOML_"))},
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        # Offline: a build that tried to reach a package index would fail fast, not hang.
        "PIP_NO_INDEX": "1",
        "UV_OFFLINE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "--output", "tag"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tag = result.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    bento = tmp_path / "bentoml" / "bentos" / name / version
    assert (bento / "bento.yaml").exists(), tag

    manifest = yaml.safe_load((bento / "bento.yaml").read_text())
    assert manifest["service"] == "service.app:VigilService"
    routes = {r["route"] for r in manifest["schema"]["routes"]}
    assert {"/predict", "/feedback"} <= routes
    for module in ("service/app.py", "service/batcher.py", "vigil/settings.py", "vigil/schema.py"):
        assert (bento / "src" / module).exists(), module

    pinned = _pins((bento / "env" / "python" / "requirements.txt").read_text())
    locked = _pins(REQUIREMENTS.read_text())
    for package in ("bentoml", "scikit-learn", "pandas", "prometheus-client", "sqlalchemy"):
        assert pinned.get(package) == locked[package], package
    # Everything is pinned: nothing is left for a resolver to choose.
    lines = [
        line.strip()
        for line in (bento / "env" / "python" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.strip().startswith(("#", "-"))
    ]
    assert all("==" in line for line in lines), [line for line in lines if "==" not in line]
