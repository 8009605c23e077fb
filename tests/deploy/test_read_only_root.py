"""The pods' commands work on a read-only root filesystem, as deploy/k8s runs them.

No cluster runs here, but a private mount namespace can make ``/`` read-only for one process
tree while the tests' temp dir (where VIGIL_HOME and the test's files live, the pods'
emptyDirs) stays writable. The training Job's, the service's and the monitor's commands are
taken from the rendered production overlay and run in turn: anything that writes outside
VIGIL_HOME, HOME or TMPDIR fails with EROFS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, missing
from tests.support import k8s_yaml
from tests.support.processes import Proc, base_env, http_ok, wait_until
from tests.support.service import ServiceHandle, wait_ready

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = REPO / "deploy" / "k8s" / "overlays" / "production"
# Bind the writable paths onto themselves, then make the root mount read-only.
READ_ONLY = (
    'for p in "$WRITABLE"; do mount --bind "$p" "$p"; done; mount -o remount,bind,ro / && exec "$@"'
)


@pytest.fixture(scope="module")
def pods() -> dict[str, dict]:
    kubectl = shutil.which("kubectl") or missing("needs kubectl")
    text = subprocess.run(
        [kubectl, "kustomize", str(PRODUCTION)], capture_output=True, text=True, check=True
    ).stdout
    containers = {}
    for doc in k8s_yaml.load_all(text):
        if doc and doc["kind"] in {"Deployment", "Job"}:
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            containers[doc["metadata"]["name"]] = container
    return containers


@pytest.fixture
def read_only_root(tmp_path, tmp_path_factory):
    """argv prefix that runs a command with ``/`` read-only except the tests' temp dir (the
    pods' emptyDir; not all of /tmp, which may hold the repository itself)."""
    unshare = shutil.which("unshare") or missing("needs unshare (util-linux)")
    writable = tmp_path_factory.getbasetemp().resolve()
    if REPO.is_relative_to(writable):
        pytest.skip("the repository lies inside the tests' temp dir, which stays writable")
    script = READ_ONLY.replace('"$WRITABLE"', f"'{writable}'")
    prefix = [unshare, "--mount", "sh", "-c", script, "sh"]
    # The repository must be unwritable inside, the temp dir writable.
    check = f"! touch {REPO}/.read-only-probe 2>/dev/null && touch {tmp_path}/probe"
    probe = subprocess.run([*prefix, "sh", "-c", check], capture_output=True, text=True)
    if probe.returncode != 0 or not (tmp_path / "probe").exists():
        missing(f"cannot make / read-only in a mount namespace: {probe.stderr.strip()}")
    return prefix


def _env(home: Path, **vigil: object) -> dict[str, str]:
    # As in the pods: HOME and TMPDIR on the writable emptyDir.
    tmp = str(home.parent)
    return base_env(home=home, **vigil) | {"HOME": tmp, "TMPDIR": tmp}


def _local(argv: list[str]) -> list[str]:
    """The image's `python` and its `vigil` command are this environment's; listen on loopback
    only."""
    head = {"python": [sys.executable], "vigil": [sys.executable, "-m", "vigil"]}
    assert argv[0] in head, argv
    return [*head[argv[0]], *("127.0.0.1" if arg == "0.0.0.0" else arg for arg in argv[1:])]


def test_train_serve_and_monitor_on_a_read_only_root(pods, read_only_root, tmp_path):
    home = tmp_path / "data"
    home.mkdir()
    train = subprocess.run(
        [*read_only_root, *_local(pods["vigil-train"]["command"])],
        cwd=REPO,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert train.returncode == 0, train.stdout + train.stderr
    assert (home / "production.json").is_file() or any(home.iterdir())

    port, monitor_port = free_port(), free_port()
    log = tmp_path / "service.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [*read_only_root, *_local(pods["vigil-service"]["command"])],
            cwd=REPO,
            env=_env(home, port=port, workers=1),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = ServiceHandle(f"http://127.0.0.1:{port}", port, home, proc, log, workers=1)
    monitor = Proc(
        "monitor",
        [*read_only_root, *_local(pods["vigil-monitor"]["command"])],
        tmp_path / "monitor.log",
        _env(home, monitor_host="127.0.0.1", monitor_port=monitor_port, drift_min_rows=1),
    )
    try:
        wait_ready(service)
        body = json.loads((REPO / "examples" / "request.json").read_text())
        answer = httpx.post(f"{service.url}/predict", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        # Prometheus multiprocess files are written (under VIGIL_HOME) and read back.
        metrics = httpx.get(f"{service.url}/metrics", timeout=10).text
        assert "vigil_predictions_total{" in metrics, metrics[-2000:]

        base = f"http://127.0.0.1:{monitor_port}"
        wait_until(lambda: http_ok(f"{base}/healthz"), 120, "monitor /healthz", [monitor])

        def ran() -> str | None:
            text = httpx.get(f"{base}/metrics", timeout=5).text
            runs = [ln for ln in text.splitlines() if ln.startswith("vigil_drift_runs_total{")]
            return text if any(not ln.endswith(" 0.0") for ln in runs) else None

        text = wait_until(ran, 180, "a drift check", [monitor])
        assert 'vigil_drift_runs_total{outcome="error"} 0.0' in text, monitor.describe()
    finally:
        monitor.stop()
        service.terminate()
    assert "Read-only file system" not in log.read_text() + monitor.tail()
