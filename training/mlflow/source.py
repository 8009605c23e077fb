"""A model from MLflow, for ``training.register --from URI``: resolved, fetched and loaded
with Vigil's own trust rules.

URIs: ``runs:/<run>/<path>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>`` (the
alias is resolved to its version first, so the version read is the version recorded) and
``models:/m-<id>``. Only the sklearn flavor is read, and never through ``pyfunc``: a skops
file is loaded with Vigil's trusted set plus ``--trust`` (the ``MLmodel``'s own
``skops_trusted_types`` were chosen by whoever logged the model), a pickle only with
``--trust-pickle``. Refused, naming why in one line: a pyfunc-only model, a model with
``code_paths``, one saved by another scikit-learn major version, a tensor signature, a
signature that disagrees with the reference columns.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.mlflow.store import client, error_line, store_for
from training.model_file import BadModel, load_source

_RUNS = re.compile(r"^runs:/(?P<run>[^/]+)/(?P<path>.+)$")
_LOGGED = re.compile(r"^models:/(?P<id>m-[0-9a-f]+)/?$")
_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[0-9]+)$")
# Signature column types that hold each kind of Vigil feature.
NUMERIC_TYPES = {"double", "float", "long", "integer"}
CATEGORICAL_TYPES = {"string"}


@dataclass
class Resolved:
    """Where a URI points: the artifact URI to fetch and what lineage records."""

    fetch_uri: str
    lineage: dict[str, Any] = field(default_factory=dict)


def resolve(mlflow_client, uri: str, tracking_uri: str) -> Resolved:
    """The artifact URI behind ``uri`` and its lineage (name, version, alias as resolved,
    run id, model id, tracking URI); ``BadModel`` for a URI of another form or one MLflow
    does not know."""
    from mlflow.exceptions import MlflowException

    lineage: dict[str, Any] = {"uri": uri, "tracking_uri": tracking_uri}
    try:
        if m := _RUNS.match(uri):
            lineage["run_id"] = m["run"]
            return Resolved(uri, lineage)
        if m := _LOGGED.match(uri):
            logged = mlflow_client.get_logged_model(m["id"])
            lineage.update(model_id=logged.model_id, run_id=logged.source_run_id)
            return Resolved(uri, lineage)
        if m := _ALIAS.match(uri):
            version = mlflow_client.get_model_version_by_alias(m["name"], m["alias"])
            lineage["alias"] = m["alias"]
        elif m := _VERSION.match(uri):
            version = mlflow_client.get_model_version(m["name"], m["version"])
        else:
            raise BadModel(
                f"--from {uri!r}: expected runs:/<run>/<path>, models:/<name>/<version>, "
                "models:/<name>@<alias> or models:/m-<id>"
            )
    except MlflowException as exc:
        raise BadModel(f"--from {uri}: {error_line(exc)}") from None
    lineage.update(
        name=version.name,
        version=str(version.version),
        run_id=version.run_id,
        model_id=getattr(version, "model_id", None),
    )
    return Resolved(f"models:/{version.name}/{version.version}", lineage)


def load_from(
    settings,
    uri: str,
    reference_columns,
    *,
    trust: tuple[str, ...] = (),
    trust_pickle: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """``(model, source)`` for ``training.register``: the model loaded from ``uri`` and the
    source it records (format, trusted types, sha256, MLflow lineage, skops bytes).
    ``reference_columns``: the reference's feature columns (a DataFrame), which a signature
    must match. ``BadModel`` for every refusal."""
    store = store_for(settings)
    if store is None:
        raise BadModel("--from needs MLflow, and VIGIL_MLFLOW_TRACKING_URI is off")
    mlflow_client = client(store)
    resolved = resolve(mlflow_client, uri, store.display_uri)
    with tempfile.TemporaryDirectory(prefix="vigil-from-mlflow-") as folder:
        import mlflow.artifacts

        try:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=resolved.fetch_uri,
                    dst_path=folder,
                    tracking_uri=store.tracking_uri,
                )  # fmt: skip
            )
        except Exception as exc:
            raise BadModel(f"--from {uri}: cannot be fetched: {error_line(exc)}") from None
        model, source = load_folder(local, reference_columns, trust, trust_pickle)
    source["mlflow"] = {k: v for k, v in resolved.lineage.items() if v is not None}
    return model, source


def load_folder(
    folder: Path, reference_columns, trust: tuple[str, ...] = (), trust_pickle: bool = False
) -> tuple[Any, dict[str, Any]]:
    """``(model, source)`` from a local MLflow model folder, after ``check_model``, loaded
    with Vigil's trust rules; ``BadModel`` for every refusal."""
    path, _ = check_model(folder, reference_columns)
    return load_source(path, trust, trust_pickle)


def check_model(folder: Path, reference_columns) -> tuple[Path, str]:
    """The model file inside an MLflow model folder and its serialization format, after the
    ``MLmodel`` checks; ``BadModel`` naming the first refusal."""
    import sklearn
    from mlflow.models import Model

    what = f"the MLflow model at {folder.name}"
    if not (folder / "MLmodel").is_file():
        raise BadModel(f"{what}: no MLmodel file (not an MLflow model)")
    model = Model.load(str(folder / "MLmodel"))
    flavor = model.flavors.get("sklearn")
    if flavor is None:
        kinds = ", ".join(sorted(model.flavors)) or "none"
        raise BadModel(
            f"{what} has no sklearn flavor (flavors: {kinds}); Vigil loads only scikit-learn "
            "models and never through pyfunc"
        )
    if any(conf.get("code") for conf in model.flavors.values() if isinstance(conf, dict)):
        raise BadModel(f"{what} carries code_paths (code it would import); refused")
    saved = str(flavor.get("sklearn_version") or "")
    if saved.split(".")[0] != sklearn.__version__.split(".")[0]:
        raise BadModel(
            f"{what} was saved by scikit-learn {saved or 'of an unknown version'}; this build "
            f"has {sklearn.__version__} (another major version)"
        )
    problem = signature_problem(model.signature, reference_columns)
    if problem:
        raise BadModel(f"{what}: {problem}")
    fmt = flavor.get("serialization_format") or "cloudpickle"
    name = str(flavor.get("pickled_model") or "")
    path = (folder / name).resolve()
    if not name or folder.resolve() not in path.parents or not path.is_file():
        raise BadModel(f"{what}: its model file {name!r} is missing")
    suffix = ".skops" if fmt == "skops" else ".pkl"
    if path.suffix != suffix:  # load_model_file decides by suffix
        path = path.rename(path.with_suffix(suffix))
    return path, fmt


def signature_problem(signature, reference_columns) -> str | None:
    """Why a signature disagrees with the reference's feature columns (names, order, and
    types: numeric with double/float/long/integer, categorical with string); None when it
    agrees or there is none."""
    import pandas as pd

    if signature is None or signature.inputs is None:
        return None
    if signature.inputs.is_tensor_spec():
        return "a tensor signature; Vigil serves named tabular columns only"
    names = signature.inputs.input_names()
    columns = [str(c) for c in reference_columns.columns]
    if names != columns:
        return (
            f"its signature's columns {names[:10]} do not match the reference's {columns[:10]} "
            "(names and order)"
        )
    for spec in signature.inputs.inputs:
        numeric = pd.api.types.is_numeric_dtype(reference_columns[spec.name])
        allowed = NUMERIC_TYPES if numeric else CATEGORICAL_TYPES
        kind = getattr(spec.type, "name", str(spec.type))
        if kind not in allowed:
            return (
                f"its signature types column {spec.name!r} as {kind}; the reference's is "
                f"{'numeric' if numeric else 'categorical'} ({' or '.join(sorted(allowed))})"
            )
    return None
