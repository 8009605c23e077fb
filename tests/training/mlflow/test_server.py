"""Against a real `mlflow server` (started once for the module on a copy of the session's empty
MLflow database, its own artifact folder, no job runner): the commands' HTTP round trip, the
alias mirror after promote and rollback, and the follower's shadow, promotion and standing
down."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port, missing
from tests.support.cli import Ran, run_command
from tests.support.processes import Proc, base_env, http_ok, wait_until
from tests.training.mlflow.test_source import SKLEARN_REQS, data, linear  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]
MLFLOW = Path(sys.executable).parent / "mlflow"
READY_SECONDS = 240  # 17-58 s measured on two loaded cores
# The server's job runner (a process and eight queue consumers, each importing MLflow) runs
# none of the calls these tests make: without it the server is up in a third of the time.
SERVER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory, mlflow_db_template):
    if not MLFLOW.is_file():
        missing("needs the mlflow server (the full mlflow of the dev group: make install)")
    root = tmp_path_factory.mktemp("mlflow-server")
    shutil.copy(mlflow_db_template, root / "mlflow.db")  # its tables made once per session
    port = free_port()
    argv = [str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(root / "artifacts"), "--workers", "1"]  # fmt: skip
    env = {**base_env(), **SERVER_ENV}
    server = Proc("mlflow server", argv, root / "server.log", env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(f"{url}/health"), READY_SECONDS, "mlflow server", [server])
        # Its first API call initialises the store (seconds under load): ready after that.
        api = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
        wait_until(lambda: http_ok(api, timeout=60), READY_SECONDS, "mlflow API", [server])
        yield url
    finally:
        server.stop()


@pytest.fixture
def home(trained_home, mlflow_server, monkeypatch):
    """The trained home, tracking to the server in an experiment and model of its own."""
    unique = secrets.token_hex(4)
    for key, value in {
        "VIGIL_MLFLOW_TRACKING_URI": mlflow_server,
        "VIGIL_MLFLOW_EXPERIMENT": f"vigil-{unique}",
        "VIGIL_MLFLOW_MODEL_NAME": f"vigil-model-{unique}",
    }.items():
        monkeypatch.setenv(key, value)
    return trained_home


def _cli(home: Path, module: str, *args: str, subprocess_: bool = False) -> Ran:
    """The command as ``python -m`` runs it against the server: in this process, or (the
    train, the round trip of a process of its own) in a subprocess."""
    keys = ("mlflow_tracking_uri", "mlflow_experiment", "mlflow_model_name")
    mlflow = {key: os.environ[f"VIGIL_{key.upper()}"] for key in keys}
    return run_command(module, *args, subprocess_=subprocess_, home=home, **mlflow)


def _client():
    from training.mlflow.store import client, store_for
    from vigil.settings import get_settings

    settings = get_settings()
    return settings, client(store_for(settings))


def _aliases(mlflow_client, name: str) -> dict[str, str]:
    return {a: str(v) for a, v in mlflow_client.get_registered_model(name).aliases.items()}


def test_train_round_trip_and_aliases_after_promote_and_rollback(home, data):  # noqa: F811
    from training.mlflow.source import load_from

    trained = _cli(home, "training.train", "--n-estimators", "10", "--seed", "7", subprocess_=True)
    assert trained.returncode in (0, 1), trained.stderr[-3000:]
    line = json.loads(trained.stdout.strip().splitlines()[-1])
    recorded = line["mlflow"]
    assert "error" not in recorded, recorded
    settings, mlflow_client = _client()
    name = settings.mlflow_model_name
    run = mlflow_client.get_run(recorded["run_id"])
    assert run.data.tags["vigil.model_tag"] == line["model_tag"]
    assert run.data.metrics["accuracy"] == pytest.approx(line["metrics"]["accuracy"])

    # Over HTTP and back: the logged model loads with Vigil's checks.
    # Vigil's forest holds two types outside skops' default trust: named, as a user would.
    trust = ("numpy.dtype", "sklearn.tree._tree.Tree")
    model, source = load_from(settings, recorded["model_uri"], data[0], trust=trust)
    assert source["mlflow"]["model_id"] == recorded["model_uri"].removeprefix("models:/")

    promoted = _cli(home, "training.promote", line["model_tag"])
    assert promoted.returncode == 0, promoted.stderr[-3000:]
    assert "warning" not in promoted.stderr, promoted.stderr[-3000:]
    assert _aliases(mlflow_client, name) == {"production": recorded["version"]}
    status = mlflow_client.get_model_version(name, recorded["version"]).tags["vigil.status"]
    assert status == "production"

    rolled = _cli(home, "training.promote", "--rollback")
    assert rolled.returncode == 0, rolled.stderr[-3000:]
    # The earlier production model was recorded before MLflow was used: it has no version,
    # so the alias leaves and the version is retired.
    assert _aliases(mlflow_client, name) == {}
    status = mlflow_client.get_model_version(name, recorded["version"]).tags["vigil.status"]
    assert status == "retired"


def _log_user_model(mlflow_client, model, name: str) -> str:
    """A model logged by a user's own MLflow code; its new version."""
    import mlflow
    import mlflow.sklearn

    mlflow.set_experiment(f"user-{name}")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model, name="model", serialization_format="skops", pip_requirements=SKLEARN_REQS,
            registered_model_name=name,
        )  # fmt: skip
    return str(info.registered_model_version)


def test_follower_shadows_a_challenger_then_promotes_it_as_champion(home, linear):  # noqa: F811
    from vigil.registry import Candidates, Registry

    settings, mlflow_client = _client()
    user_model = f"churn-{secrets.token_hex(3)}"
    version = _log_user_model(mlflow_client, linear, user_model)
    production = Registry(settings).production_tag()

    mlflow_client.set_registered_model_alias(user_model, "challenger", version)
    shadowed = _cli(home, "training.models", "follow-mlflow", "--model", user_model, "--once")
    assert shadowed.returncode == 0, shadowed.stdout + shadowed.stderr[-3000:]
    action = json.loads(shadowed.stdout.strip().splitlines()[-1])["actions"]["challenger"]
    assert action["status"] == "shadow", action
    candidate = Candidates(Registry(settings)).current()
    assert candidate.active and candidate.mode == "shadow"
    assert candidate.tag == action["model_tag"]
    tags = mlflow_client.get_model_version(user_model, version).tags
    assert tags["vigil.status"] == "shadow" and tags["vigil.model_tag"] == candidate.tag
    assert "shadow" in _aliases(mlflow_client, settings.mlflow_model_name)

    again = _cli(home, "training.models", "follow-mlflow", "--model", user_model, "--once")
    assert json.loads(again.stdout.strip().splitlines()[-1])["actions"] == {}

    mlflow_client.set_registered_model_alias(user_model, "champion", version)
    promoted = _cli(home, "training.models", "follow-mlflow", "--model", user_model, "--once")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr[-3000:]
    action = json.loads(promoted.stdout.strip().splitlines()[-1])["actions"]["champion"]
    assert action["status"] == "production", action
    registry = Registry(settings)
    assert registry.production_tag() == action["model_tag"] != production
    assert not Candidates(registry).current().active  # its shadow ended with the promotion
    assert mlflow_client.get_model_version(user_model, version).tags["vigil.status"] == (
        "production"
    )
    mirrored = _aliases(mlflow_client, settings.mlflow_model_name)
    assert set(mirrored) == {"production"}


def test_follower_stands_down_when_production_changes_under_it(home, linear, monkeypatch):  # noqa: F811
    """Another operator promotes while the follower compares: its compare-and-set fails, it
    promotes nothing, says so (exit 3 with --once) and writes why on the version."""
    import training.policy
    from training.mlflow.follow import CONFLICT_EXIT, FollowOptions, run
    from vigil.registry import Registry

    settings, mlflow_client = _client()
    user_model = f"churn-{secrets.token_hex(3)}"
    version = _log_user_model(mlflow_client, linear, user_model)
    registry = Registry(settings)
    production = registry.production_tag()
    # A second model another operator will promote (the production's own copy under a new tag).
    other = registry.save(
        registry.load(production).pipeline,
        {**registry.load(production).contract, "lineage": {}},
        registry.load(production).reference,
    )

    def promoted_meanwhile(*args, **kwargs):
        """The comparison happens; meanwhile another operator promotes (through a registry
        handle of its own). The champion is not worse: only the compare-and-set stops it."""
        Registry(settings).promote(other, by="another operator")
        return None

    monkeypatch.setattr(training.policy, "_worse_than_production", promoted_meanwhile)
    mlflow_client.set_registered_model_alias(user_model, "champion", version)
    lines: list[str] = []
    code = run(settings, FollowOptions(user_model), once=True, interval=1, echo=lines.append)
    assert code == CONFLICT_EXIT, lines
    action = json.loads(lines[-1])["actions"]["champion"]
    assert action["conflict"] is True and action["status"] == "refused"
    assert Registry(settings).production_tag() == other
    tags = mlflow_client.get_model_version(user_model, version).tags
    assert tags["vigil.status"] == "refused"
    assert "another operator" in tags["vigil.reason"]
