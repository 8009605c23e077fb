"""A training run recorded in MLflow: what the run holds, and that MLflow never holds a
command up for long."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from training.train import Outcome


def _production_outcome(settings) -> Outcome:
    from vigil.registry import Registry

    registry = Registry(settings)
    record = registry.model(registry.production_tag())
    task = record.contract["task"]
    return Outcome(record.tag, record.metrics, True, None, True, task)


def test_a_run_holds_params_metrics_tags_inputs_model_and_files(settings):
    import mlflow
    import skops.io
    from mlflow import MlflowClient
    from mlflow.models import Model

    from training.mlflow.tracking import json_line
    from vigil.registry import Registry

    outcome = _production_outcome(settings)
    line = json_line(settings, outcome, "train")
    recorded = line["mlflow"]
    assert set(recorded) == {"run_id", "experiment_id", "model_uri", "registered_model",
                             "version"}, recorded  # fmt: skip
    assert json.loads(json.dumps(line))["model_tag"] == outcome.model_tag

    # The embedded store lives under VIGIL_HOME, its artifacts beside it.
    root = settings.home_dir / "mlflow"
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    run = client.get_run(recorded["run_id"])
    assert run.info.artifact_uri.startswith((root / "artifacts").as_uri())
    bundle = Registry(settings).load(outcome.model_tag)
    contract = bundle.contract

    assert run.data.params["estimator"] == contract["params"]["estimator"]
    assert run.data.params["n_estimators"] == str(contract["params"]["n_estimators"])
    assert run.data.params["task"] == "classification"
    assert run.data.params["dataset"] == contract["dataset_source"]
    assert run.data.metrics == pytest.approx(outcome.metrics)
    tags = run.data.tags
    assert tags["vigil.model_tag"] == outcome.model_tag
    assert tags["vigil.promoted"] == "true"
    assert tags["vigil.data_sha256"] == contract["dataset_sha256"]
    assert len(tags["vigil.data_sha256"]) == 64
    assert tags["vigil.git_commit"] == (contract["git_commit"] or "")

    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "holdout"}
    assert inputs["training"].dataset.digest == contract["dataset_sha256"][:36]
    assert {t.value for t in inputs["training"].tags} == {"training"}

    files = {f.path for f in client.list_artifacts(run.info.run_id, "vigil")}
    assert files == {"vigil/contract.json", "vigil/model.onnx"}

    model = Model.load(recorded["model_uri"])
    assert model.signature.inputs.input_names() == bundle.schema.names
    assert {s.type.name for s in model.signature.inputs.inputs} == {"double"}
    assert "sklearn" in model.flavors
    assert model.flavors["sklearn"]["serialization_format"] == "skops"
    folder = mlflow.artifacts.download_artifacts(recorded["model_uri"])
    data = next(Path(folder).glob("*.skops")).read_bytes()
    loaded = skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
    features = bundle.reference[bundle.schema.names]
    assert (loaded.predict(features) == bundle.pipeline.predict(features)).all()

    version = client.get_model_version(recorded["registered_model"], recorded["version"])
    assert version.tags["vigil.model_tag"] == outcome.model_tag
    holder = client.get_model_version_by_alias("vigil-model", "production")
    assert str(holder.version) == recorded["version"] == "1"
    assert version.tags["vigil.status"] == "production"


def test_mlflow_off_records_nothing(settings, monkeypatch):
    from training.mlflow.tracking import json_line

    monkeypatch.setenv("VIGIL_MLFLOW_TRACKING_URI", "off")
    from vigil.settings import get_settings

    line = json_line(get_settings(), _production_outcome(settings), "train")
    assert "mlflow" not in line


def test_an_unreachable_server_is_an_error_within_ten_seconds(settings):
    from training.mlflow.tracking import json_line
    from vigil.settings import get_settings

    dead = get_settings(mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}")
    outcome = _production_outcome(settings)
    started = time.monotonic()
    line = json_line(dead, outcome, "train")
    # A refused connection fails at once (no retry): far inside the 10 s bound.
    assert time.monotonic() - started <= 5
    assert set(line["mlflow"]) == {"error"}, line
    assert "\n" not in line["mlflow"]["error"]


def test_a_server_that_never_answers_is_an_error_once_the_reach_bound_passes(settings, monkeypatch):
    """Connections complete in the listen backlog; nobody ever reads or answers. The bound on
    reaching MLflow (10 s) is lowered so the test does not wait it out."""
    import training.mlflow.store
    from training.mlflow.tracking import json_line
    from vigil.settings import get_settings

    monkeypatch.setattr(training.mlflow.store, "REACH_SECONDS", 2.0)

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        stalled = get_settings(mlflow_tracking_uri=f"http://127.0.0.1:{port}")
        started = time.monotonic()
        line = json_line(stalled, _production_outcome(settings), "train")
        took = time.monotonic() - started
    assert took <= 10.5, took
    assert "error" in line["mlflow"], line
    assert "did not answer within 2 s" in line["mlflow"]["error"], line
