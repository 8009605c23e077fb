"""One MLflow run per ``train``, ``register`` and ``retrain``, recorded after Vigil's registry
committed the model, from what the registry holds.

The run has the estimator's parameters, task and data set as params; the held-out metrics
under the JSON line's names; tags ``vigil.model_tag``, ``vigil.promoted``, ``vigil.reason``,
``vigil.git_commit``, ``vigil.data_sha256``; the training sample and the trusted holdout as
inputs; the model (sklearn flavor, skops) with a signature from Vigil's feature schema and an
input example; ``contract.json`` and the ONNX file. The model becomes a version of
``VIGIL_MLFLOW_MODEL_NAME`` and the aliases are reconciled with Vigil's pointers.

MLflow never fails a command nor holds it long: after the local work (importing MLflow, about
a second, and reading the model back from Vigil's registry), the calls run in a thread of
their own; reaching MLflow (the first call) has ``REACH_SECONDS``, and a store that answered
has ``RECORD_SECONDS`` to finish; each HTTP call has its own short timeout and no retry.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.mlflow.store import (
    MODEL_TAG,
    REASON_TAG,
    STATUS_TAG,
    Store,
    bounded,
    client,
    error_line,
    experiment_id,
    reach_for,
    store_for,
)

# MLflow's dataset digest column holds 36 characters; the full sha256 is the run's tag.
DIGEST_CHARS = 36
EXAMPLE_ROWS = 5
# training.train's reason when --promote was not given: not a refusal.
NOT_ASKED = "not asked to promote"


@dataclass(frozen=True)
class Recorded:
    run_id: str
    experiment_id: str
    model_uri: str
    registered_model: str
    version: str

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def record(settings, outcome, command: str) -> dict | None:
    """Record ``outcome`` (a saved model) as one MLflow run: the JSON line's ``"mlflow"``
    value (``run_id``, ``experiment_id``, ``model_uri``, ``registered_model``, ``version``),
    ``{"error": "<one line>"}`` when MLflow failed or took too long, None when MLflow is off.
    A retrained model's run names the run of the model it was retrained from as its parent."""
    store = store_for(settings)
    if store is None:
        return None
    try:  # local work first, outside the clock: importing MLflow and reading the model
        import mlflow  # noqa: F401

        from vigil.registry import Registry

        bundle = Registry(settings).load(outcome.model_tag)
    except Exception as exc:
        return {"error": error_line(exc)}
    return bounded(
        lambda reached: _record(settings, store, bundle, outcome, command, reached),
        reach=reach_for(store),
    )


def _record(settings, store: Store, bundle, outcome, command, reached) -> dict:
    import mlflow

    mlflow_client = client(store)
    experiment = experiment_id(mlflow_client, store)
    reached.set()
    contract = bundle.contract
    parent_tag = (contract.get("lineage") or {}).get("parent")
    parent_run = run_of(mlflow_client, experiment, parent_tag) if parent_tag else None
    tags = {
        MODEL_TAG: bundle.tag,
        "vigil.command": command,
        "vigil.promoted": str(bool(outcome.promoted)).lower(),
        "vigil.reason": (outcome.reason or "")[:5000],
        "vigil.git_commit": contract.get("git_commit") or "",
        "vigil.data_sha256": contract.get("dataset_sha256") or "",
    }
    if parent_run is not None:
        tags["mlflow.parentRunId"] = parent_run
    mlflow.set_experiment(experiment_id=experiment)
    with mlflow.start_run(run_name=f"{command} {bundle.tag}", tags=tags) as run:
        mlflow.log_params(params_of(contract, outcome.task))
        mlflow.log_metrics(metrics_of(outcome.metrics))
        for dataset, context in datasets_of(bundle):
            mlflow.log_input(dataset, context=context)
        info = _log_model(bundle)
        _log_contract_files(bundle)
    _ensure_registered(mlflow_client, store.model_name)
    version = mlflow_client.create_model_version(
        store.model_name,
        source=info.model_uri,
        run_id=run.info.run_id,
        model_id=info.model_id,
        tags=version_tags(bundle.tag, outcome),
        await_creation_for=0,
    )
    from training.mlflow.aliases import reconcile

    reconcile(settings, store, mlflow_client)
    return Recorded(
        run.info.run_id, experiment, info.model_uri, store.model_name, str(version.version)
    ).to_dict()


def _ensure_registered(mlflow_client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.create_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise


def version_tags(tag: str, outcome) -> dict[str, str]:
    """A new version's tags: the Vigil model it is, and ``refused`` with the reason when it
    was asked to be promoted and was not (the aliases' reconciliation sets the rest)."""
    tags = {MODEL_TAG: tag}
    if not outcome.promoted and not str(outcome.reason or "").startswith(NOT_ASKED):
        tags.update({STATUS_TAG: "refused", REASON_TAG: str(outcome.reason or "")[:5000]})
    return tags


def run_of(mlflow_client, experiment: str, tag: str) -> str | None:
    """The newest run that recorded Vigil model ``tag``, or None."""
    runs = mlflow_client.search_runs(
        [experiment], f"tags.`{MODEL_TAG}` = '{tag}'", max_results=1, order_by=["start_time DESC"]
    )
    return runs[0].info.run_id if runs else None


def params_of(contract: dict, task: str) -> dict[str, Any]:
    params = {k: v for k, v in (contract.get("params") or {}).items() if v is not None}
    return {**params, "task": task, "dataset": str(contract.get("dataset_source") or "")[:500]}


def metrics_of(metrics: dict) -> dict[str, float]:
    """The held-out metrics under the JSON line's names (finite numbers only)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def datasets_of(bundle) -> list[tuple[Any, str]]:
    """(dataset, context) for the training sample and the trusted holdout."""
    import pandas as pd

    from vigil.registry import holdout
    from vigil.registry.store import LABEL_COLUMN
    from vigil.schema import to_frame

    schema = bundle.schema
    target = schema.target or "target"
    reference = bundle.reference
    training = reference[schema.names].copy()
    training[target] = reference[LABEL_COLUMN].to_numpy()
    sha = bundle.contract.get("dataset_sha256") or ""
    out = [(_dataset(training, target, "training", sha or _digest(training)), "training")]
    stored = holdout.from_contract(bundle.contract)
    if stored is not None:
        features, labels = stored
        frame = to_frame(schema, features)
        frame[target] = pd.Series(labels).to_numpy()
        out.append((_dataset(frame, target, "holdout", _digest(frame)), "holdout"))
    return out


def _dataset(frame, target: str, name: str, digest: str):
    import mlflow.data

    return mlflow.data.from_pandas(frame, targets=target, name=name, digest=digest[:DIGEST_CHARS])


def _digest(frame) -> str:
    import hashlib

    import pandas as pd

    raw = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    return hashlib.sha256(raw).hexdigest()


def signature_of(schema):
    """MLflow's signature of Vigil's feature schema: one named column per feature, numeric
    as double and categorical as string, in the schema's order."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec
    from mlflow.types import Schema as MlflowSchema

    kinds = {"numeric": "double", "categorical": "string"}
    columns = [ColSpec(kinds[f.kind], f.name) for f in schema.features]
    return ModelSignature(inputs=MlflowSchema(columns))


def _log_model(bundle):
    """The pipeline in the sklearn flavor, saved with skops, trusting exactly the types it
    holds (skops refuses a forest's tree otherwise)."""
    import mlflow.sklearn
    import sklearn
    import skops
    import skops.io

    pipeline = bundle.pipeline
    features = bundle.reference[bundle.schema.names]
    example = features.dropna().head(EXAMPLE_ROWS)
    return mlflow.sklearn.log_model(
        pipeline,
        name="model",
        serialization_format="skops",
        skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)),
        signature=signature_of(bundle.schema),
        input_example=example if len(example) else features.head(EXAMPLE_ROWS),
        # Inferring requirements imports the environment (seconds); these are what loads it.
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}"],
    )


def _log_contract_files(bundle) -> None:
    import mlflow

    from vigil.onnx_model import ARTIFACT as ONNX
    from vigil.registry.store import CONTRACT

    with tempfile.TemporaryDirectory() as folder:
        for name in (CONTRACT, ONNX):
            if name in bundle.artifacts:
                (Path(folder) / name).write_bytes(bundle.artifact_bytes(name))
        mlflow.log_artifacts(folder, artifact_path="vigil")


def json_line(settings, outcome, command: str) -> dict:
    """The command's JSON line: ``outcome`` plus its ``"mlflow"`` record (when MLflow is on)."""
    doc = outcome.to_dict()
    recorded = record(settings, outcome, command)
    if recorded is not None:
        doc["mlflow"] = recorded
    return doc
