"""docker-compose.yml: valid against the compose spec, and consistent with the repository.

There is no Docker engine here, so the file is checked statically: the vendored compose-spec
schema (check-jsonschema), then what the schema cannot see.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
ONE_SHOT = {"train"}
CONTRACT_SERVICES = {"service", "monitor", "prometheus", "alertmanager", "grafana"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _check_jsonschema() -> str:
    local = Path(sys.executable).with_name("check-jsonschema")
    found = str(local) if local.exists() else shutil.which("check-jsonschema")
    if not found:
        pytest.fail("check-jsonschema is not installed (it is in the dev dependency group)")
    return found


@pytest.mark.integration
def test_valid_against_the_compose_spec():
    result = subprocess.run(
        [_check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_services_and_ports(compose):
    services = compose["services"]
    assert CONTRACT_SERVICES <= set(services)
    published = {
        name: {port.rsplit(":", 2)[-2] for port in spec.get("ports", [])}
        for name, spec in services.items()
    }
    assert published["grafana"] == {"3001"}
    assert published["service"] == {"3000"}
    assert published["monitor"] == {"9108"}
    assert published["prometheus"] == {"9090"}
    assert published["alertmanager"] == {"9093"}


def test_bind_mounted_host_paths_exist(compose):
    for name, spec in compose["services"].items():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose.get("volumes", {}), f"{name}: undeclared volume {source}"


def test_depends_on_targets_exist_and_are_healthy_or_done(compose):
    services = compose["services"]
    for name, spec in services.items():
        for target, rule in (spec.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = rule["condition"]
            if target in ONE_SHOT:
                assert condition == "service_completed_successfully", (name, target)
            else:
                assert condition == "service_healthy", (name, target)
                assert "healthcheck" in services[target], f"{target} has no healthcheck"


def test_images_are_pinned_and_the_dockerfile_exists(compose):
    for name, spec in compose["services"].items():
        if "build" in spec:
            build = spec["build"]
            context = REPO / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            assert (context / (dockerfile or "Dockerfile")).is_file(), name
            continue
        image = spec["image"]
        assert re.match(r"^[\w./-]+:[\w.-]+$", image), f"{name}: image {image!r} has no tag"
        assert not image.endswith(":latest"), f"{name}: image {image!r} is not pinned"


def test_long_running_services_have_healthchecks(compose):
    for name, spec in compose["services"].items():
        if name not in ONE_SHOT:
            assert spec.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_state_volume_is_shared_by_service_and_monitor(compose):
    services = compose["services"]
    for name in ("service", "monitor", "train"):
        assert "vigil-data:/data" in services[name]["volumes"], name
        assert services[name]["environment"]["VIGIL_HOME"] == "/data", name


def test_configs_named_in_commands_are_the_mounted_compose_variants(compose):
    services = compose["services"]
    mounts = {
        name: {
            v.split(":")[1]: REPO / v.split(":")[0]
            for v in spec.get("volumes", [])
            if v.startswith("./")
        }
        for name, spec in services.items()
    }
    for name, flag in (("prometheus", "--config.file="), ("alertmanager", "--config.file=")):
        (config,) = [arg[len(flag) :] for arg in services[name]["command"] if arg.startswith(flag)]
        assert config.endswith(".compose.yml"), config
        container_dir, filename = config.rsplit("/", 1)
        assert (mounts[name][container_dir] / filename).is_file(), config


def test_grafana_password_is_required_and_anonymous_access_off(compose):
    env = compose["services"]["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == (
        "${GRAFANA_ADMIN_PASSWORD:?set GRAFANA_ADMIN_PASSWORD}"
    )
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_dockerfile_installs_the_wheel_from_the_lock_and_runs_the_service():
    text = (REPO / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "uv export --frozen --no-dev" in text and "uv build --wheel" in text
    assert "--no-deps /tmp/dist/*.whl" in text
    assert "COPY . ." not in text  # the image holds the wheel, not the tree
    assert 'CMD ["vigil", "serve", "--host", "0.0.0.0"]' in text
