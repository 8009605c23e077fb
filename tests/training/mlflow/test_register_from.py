"""`training.register --from models:/NAME@ALIAS`: a model logged by a user's own MLflow code,
registered, promoted, recorded back in MLflow, its origin in the lineage."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from tests.training.mlflow.test_source import SKLEARN_REQS, data, linear  # noqa: F401


def _app(command) -> typer.Typer:
    app = typer.Typer(add_completion=False)
    app.command()(command)
    return app


def test_register_from_an_alias_records_lineage_and_a_run(settings, tmp_path, data, linear):  # noqa: F811
    import mlflow
    import mlflow.sklearn

    from training import models
    from training.mlflow.store import client, experiment_id, store_for
    from training.register import main
    from vigil.registry import Registry

    mlflow_client = client(store_for(settings))
    # The embedded store's experiment keeps artifacts under VIGIL_HOME (a new one would
    # write to ./mlruns).
    mlflow.set_experiment(experiment_id=experiment_id(mlflow_client, store_for(settings)))
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(
            linear, name="clf", serialization_format="skops", pip_requirements=SKLEARN_REQS,
            registered_model_name="churn",
        )  # fmt: skip
    mlflow_client.set_registered_model_alias("churn", "champion", "1")
    x, y = data
    frame = x.assign(target=y)
    frame.iloc[::2].to_csv(tmp_path / "reference.csv", index=False)
    frame.iloc[1::2].to_csv(tmp_path / "holdout.csv", index=False)
    args = ["--from", "models:/churn@champion", "--reference", str(tmp_path / "reference.csv"),
            "--holdout", str(tmp_path / "holdout.csv"), "--target", "target"]  # fmt: skip

    result = CliRunner().invoke(_app(main), args)
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["mlflow"]["registered_model"] == "vigil-model", line
    tag = line["model_tag"]
    origin = Registry(settings).model(tag).contract["lineage"]["registered"]["mlflow"]
    assert origin["name"] == "churn" and origin["version"] == "1"
    assert origin["alias"] == "champion" and origin["run_id"] == run.info.run_id
    assert origin["tracking_uri"].startswith("sqlite:///")

    shown = CliRunner().invoke(models.cli, ["show", tag])
    assert shown.exit_code == 0, shown.output
    assert "mlflow:" in shown.stdout and "alias=champion" in shown.stdout

    neither = CliRunner().invoke(_app(main), args[2:])
    assert neither.exit_code == 2
    assert "--model FILE or --from URI" in neither.output
