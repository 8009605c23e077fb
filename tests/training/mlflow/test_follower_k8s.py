"""The follower's Kubernetes component renders onto an overlay: one pass a minute, never two
at a time."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import need_binary
from tests.support.k8s_yaml import load_all
from tests.support.processes import REPO


@pytest.mark.integration
def test_follower_component_renders_as_a_forbid_concurrency_cronjob(tmp_path):
    kubectl = need_binary("kubectl")
    shutil.copytree(REPO / "deploy" / "k8s", tmp_path / "k8s")
    overlay = tmp_path / "k8s" / "overlays" / "with-follower"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [../dev]\ncomponents: [../../components/mlflow-follower]\n"
    )
    out = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    docs = [d for d in load_all(out.stdout) if d]
    (job,) = [d for d in docs if d["metadata"]["name"] == "vigil-mlflow-follower"]
    assert job["kind"] == "CronJob" and job["spec"]["concurrencyPolicy"] == "Forbid"
    container = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:5] == [
        "python", "-m", "training.models", "follow-mlflow", "--once",
    ]  # fmt: skip
