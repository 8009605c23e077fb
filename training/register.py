"""Register a model trained elsewhere: checked, gated, exported and saved like a trained one.

    python -m training.register (--model FILE | --from MLFLOW_URI) --reference DATA
        --holdout DATA --target COLUMN [--task auto|classification|regression]
        [--trust TYPE ...] [--trust-pickle] [--promote]

The model is any fitted scikit-learn estimator or ``Pipeline`` whose ``predict`` takes a
DataFrame of the reference's feature columns; it is not refitted. The feature schema comes from
the reference data and must agree with the model's ``feature_names_in_``; the model must answer
on the reference rows. ``.skops`` files are loaded with skops' type check; pickles
(``.joblib``, ``.pkl``) only with ``--trust-pickle``, since unpickling runs whatever code the
file names. Same JSON line, exit codes, gate, promotion rule and ONNX check as
``training.train``; the registry keeps a skops model as skops (``pipeline.skops``), so serving
never unpickles it, and the lineage names the file's sha256.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from training.data import BadData, fingerprint, read_frame
from training.policy import DEFAULT_GATE, Gate, Outcome, decide
from training.train import REFERENCE_MAX_ROWS, MinAccuracyOption, MinR2Option, PromoteOption
from vigil.registry import holdout as trusted_holdout
from vigil.text import one_line

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
# Read whole before any parsing: far above a forest of hundreds of deep trees (~100 MB).
MAX_MODEL_BYTES = 2 * 1024**3
# scikit-learn's own types that skops does not trust by default but that hold only arrays
# (a fitted HistGradientBoosting's trees): trusted without --trust.
DEFAULT_TRUSTED = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)


class BadModel(ValueError):
    """The model or its data cannot be registered; the message says why, in one line."""


def read_model_file(path: Path) -> bytes:
    """The file's bytes, read once and at most ``MAX_MODEL_BYTES`` of them (``BadModel``
    beyond): what is checked, loaded, gated, hashed and stored is this one read."""
    if not path.is_file():
        raise BadModel(f"{path}: no such file")
    if path.stat().st_size > MAX_MODEL_BYTES:  # refused before reading any of it
        raise BadModel(f"{path}: {path.stat().st_size} bytes, more than {MAX_MODEL_BYTES}")
    with path.open("rb") as file:
        data = file.read(MAX_MODEL_BYTES + 1)  # the file may have grown since the stat
    if len(data) > MAX_MODEL_BYTES:
        raise BadModel(f"{path}: more than {MAX_MODEL_BYTES} bytes")
    return data


def load_model_file(
    path: Path, *, trust: tuple[str, ...] = (), trust_pickle: bool = False
) -> tuple[Any, str, list[str]]:
    """``(model, format, trusted types)`` from a ``.skops`` or pickle file; ``BadModel`` for a
    refused or unloadable file (an untrusted type, a pickle without ``trust_pickle``, a
    module that cannot be imported)."""
    return load_model_data(read_model_file(path), path, trust=trust, trust_pickle=trust_pickle)


def load_model_data(
    data: bytes, path: Path, *, trust: tuple[str, ...] = (), trust_pickle: bool = False
) -> tuple[Any, str, list[str]]:
    """As ``load_model_file``, from the bytes already read from ``path`` (whose suffix says
    the format)."""
    from vigil.registry.store import MissingModelCode, load_model_bytes

    suffix = path.suffix.lower()
    if suffix == ".skops":
        import skops.io

        try:
            untrusted = skops.io.get_untrusted_types(data=data)
        except Exception as exc:
            raise BadModel(f"{path}: not a readable skops file: {one_line(exc)}") from None
        refused = sorted(set(untrusted) - set(trust) - set(DEFAULT_TRUSTED))
        if refused:
            raise BadModel(
                f"{path}: type {refused[0]} is not trusted by skops"
                + (
                    f" (nor {len(refused) - 1} more: {', '.join(refused[1:4])})"
                    if refused[1:]
                    else ""
                )
                + "; if you trust it, pass --trust "
                + refused[0]
            )
        fmt, trusted = "skops", sorted(untrusted)
    elif suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise BadModel(
                f"{path}: a pickle is loaded only with --trust-pickle: unpickling runs any code "
                "the file names, so load only files you made yourself (or save it with skops)"
            )
        fmt, trusted = "joblib", []
    else:
        raise BadModel(f"{path}: expected a .skops, .joblib or .pkl file")
    try:
        return load_model_bytes(data, fmt, trusted, str(path)), fmt, trusted
    except MissingModelCode as exc:
        raise BadModel(str(exc)) from None
    except Exception as exc:
        raise BadModel(f"{path}: cannot be loaded: {type(exc).__name__}: {one_line(exc)}") from None


def register_model(
    model: Any,
    reference: pd.DataFrame,
    reference_labels: pd.Series,
    holdout: pd.DataFrame,
    holdout_labels: pd.Series,
    *,
    task: str = "auto",
    promote: bool = False,
    settings=None,
    gate: Gate = DEFAULT_GATE,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Register a fitted ``model``: returns the outcome as the CLI prints it (``model_tag``,
    ``task``, ``metrics``, ``promoted``, ``reason`` when not promoted). ``BadModel`` when the
    model or the data cannot be registered (nothing saved). ``source``: what the CLI read
    (file, format, sha256, trusted types); a model handed over in Python is stored as skops
    when skops can write it, else with joblib."""
    from vigil.settings import get_settings

    outcome = _register(
        model,
        (reference, pd.Series(reference_labels)),
        (holdout, pd.Series(holdout_labels)),
        task=task,
        promote=promote,
        settings=settings or get_settings(),
        gate=gate,
        source=source or _as_stored(model),
    )
    return outcome.to_dict()


def _register(model, reference, holdout, *, task, promote, settings, gate, source) -> Outcome:
    from vigil.schema import FeatureSchema, to_frame
    from vigil.tasks import get_task

    ref_x, ref_y = _features(*reference, "reference")
    hold_x, hold_y = _features(*holdout, "holdout")
    chosen = get_task(_decide_task(model, ref_y) if task == "auto" else task)
    for name, labels in (("reference", ref_y), ("holdout", hold_y)):
        if labels.isna().any():
            raise BadModel(f"{name}: {int(labels.isna().sum())} labels are missing")
    problem = chosen.target_problem(ref_y)
    if problem:
        raise BadModel(f"reference labels: the target {problem}")
    ref_x = ref_x[_feature_order(model, list(ref_x.columns))]
    missing = [c for c in ref_x.columns if c not in hold_x.columns]
    if missing:
        raise BadModel(f"holdout lacks the reference's columns: {', '.join(missing[:10])}")
    target = str(reference[1].name or "target")
    schema = FeatureSchema.infer(ref_x, ref_y, target, chosen.name)
    classes = _model_classes(model)
    if classes:  # the model's own classes (the reference may lack one)
        schema = replace(schema, classes=tuple(classes))
    ref_x, hold_x = to_frame(schema, ref_x), to_frame(schema, hold_x)
    ref_y, hold_y = chosen.normalise_labels(ref_y), chosen.normalise_labels(hold_y)
    try:
        chosen.outputs(chosen.raw(model, ref_x), classes)
    except Exception as exc:
        raise BadModel(
            f"the model cannot answer on the reference rows: {type(exc).__name__}: {one_line(exc)}"
        ) from None
    if len(ref_x) > REFERENCE_MAX_ROWS:
        ref_x = ref_x.sample(n=REFERENCE_MAX_ROWS, random_state=0).sort_index()
        ref_y = ref_y.loc[ref_x.index]
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    stored = source.pop("bytes", None)
    contract = {
        "params": {
            "estimator": "registered",
            "estimator_class": type(final).__name__,
            "train_rows": None,
            "reference_rows": len(ref_x),
            "holdout_rows": len(hold_x),
        },
        "dataset_sha256": fingerprint(ref_x),
        "dataset_source": f"registered: {source.get('file') or 'Python object'}",
        "model_format": source["format"],
        "skops_trusted": source.get("trusted", []),
        "lineage": {"registered": source},
        trusted_holdout.CONTRACT_KEY: trusted_holdout.to_contract(hold_x, hold_y),
    }
    from vigil.registry.store import SKOPS_PIPELINE

    return decide(
        settings,
        chosen,
        schema,
        model,
        (ref_x, ref_y),
        (hold_x, hold_y),
        naive=chosen.naive(ref_y, hold_y),
        promote=promote,
        gate=gate,
        contract=contract,
        artifacts={SKOPS_PIPELINE: stored} if source["format"] == "skops" else None,
    )


def _features(frame: pd.DataFrame, labels: pd.Series, what: str):
    if frame.empty:
        raise BadModel(f"{what}: no rows")
    if len(frame) != len(labels):
        raise BadModel(f"{what}: {len(frame)} rows but {len(labels)} labels")
    frame = frame.rename(columns=str).reset_index(drop=True)
    return frame, labels.reset_index(drop=True)


def _decide_task(model, labels: pd.Series) -> str:
    """A scikit-learn classifier or regressor says what it is; anything else is decided from
    the labels, as ``training.train --task auto`` does."""
    from sklearn.base import is_classifier, is_regressor

    from vigil.tasks import CLASSIFICATION, REGRESSION, infer_task

    try:
        if is_classifier(model):
            return CLASSIFICATION
        if is_regressor(model):
            return REGRESSION
    except Exception:  # an object without scikit-learn's tags
        pass
    return infer_task(labels)


def _feature_order(model, columns: list[str]) -> list[str]:
    """The reference's feature columns in the order the model was fitted with; ``BadModel``
    naming the missing and extra columns when they disagree with ``feature_names_in_``."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return columns
    names = [str(n) for n in names]
    missing = [n for n in names if n not in columns]
    extra = [c for c in columns if c not in names]
    if missing or extra:
        raise BadModel(
            "the reference's columns do not match the model's features: "
            f"missing {missing[:20] or 'none'}, extra {extra[:20] or 'none'}"
        )
    return names


def _model_classes(model) -> list[Any]:
    from training.pipeline import classes_of

    return classes_of(model)


def _as_stored(model) -> dict[str, Any]:
    """How a model handed over in Python is stored: skops bytes (with the types it needs
    trusted, since its owner handed it over) when skops can write it, else joblib."""
    import skops.io

    try:
        data = skops.io.dumps(model)
        return {
            "format": "skops",
            "trusted": skops.io.get_untrusted_types(data=data),
            "bytes": data,
        }
    except Exception:
        return {"format": "joblib"}


def _read(path: Path, target: str, what: str) -> tuple[pd.DataFrame, pd.Series]:
    frame = read_frame(path)
    if target not in frame.columns:
        raise BadData(f"{path}: target column {target!r} not found in the {what} data")
    labels = frame.pop(target)
    labels.name = target
    return frame, labels


def main(
    reference: Annotated[
        Path, typer.Option(help="Rows like the training data, .csv/.parquet (drift reference)")
    ],
    holdout: Annotated[
        Path, typer.Option(help="Rows the model was not trained on (gate, quality reference)")
    ],
    target: Annotated[str, typer.Option(help="The label column of both data files")],
    model: Annotated[
        Path | None, typer.Option(help="The fitted model: .skops, or .joblib/.pkl")
    ] = None,
    from_uri: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Instead of --model: an MLflow model (runs:/RUN/PATH, models:/NAME/VERSION, "
            "models:/NAME@ALIAS, models:/m-ID), sklearn flavor only",
        ),
    ] = None,
    task: Annotated[
        str, typer.Option(help="auto (from the model and labels), classification or regression")
    ] = "auto",
    trust: Annotated[
        list[str] | None,
        typer.Option(help="A type outside skops' trusted set to load anyway (repeatable)"),
    ] = None,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Load a pickle: it runs the code it names")
    ] = False,
    promote: PromoteOption = False,
    min_accuracy: MinAccuracyOption = DEFAULT_GATE.min_accuracy,
    min_r2: MinR2Option = DEFAULT_GATE.min_r2,
) -> None:
    """Register a fitted scikit-learn model; prints one JSON line (exit 0 saved, 1 gate
    failed, 2 refused: nothing saved).

    Example: python -m training.register --from models:/churn@champion --reference ref.csv
    --holdout holdout.csv --target churned --trust sklearn.tree._tree.Tree --promote
    """
    import json

    from training.mlflow.tracking import json_line
    from vigil.settings import get_settings
    from vigil.tasks import TASKS

    settings = get_settings()
    try:
        if task not in ("auto", *TASKS):
            raise BadModel(f"--task {task!r}: expected auto, {' or '.join(TASKS)}")
        if (model is None) == (from_uri is None):
            raise BadModel("give --model FILE or --from URI (one of them)")
        ref = _read(reference, target, "reference")
        if from_uri is not None:
            from training.mlflow.source import load_from

            loaded, source = load_from(
                settings, from_uri, ref[0], trust=tuple(trust or ()), trust_pickle=trust_pickle
            )
        else:
            loaded, source = load_source(model, tuple(trust or ()), trust_pickle)
        outcome = _register(
            loaded,
            ref,
            _read(holdout, target, "holdout"),
            task=task,
            promote=promote,
            settings=settings,
            gate=Gate(min_accuracy=min_accuracy, min_r2=min_r2),
            source=source,
        )
    except (BadModel, BadData) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(json_line(settings, outcome, "register")))
    if not outcome.gate_passed:
        raise typer.Exit(1)


def load_source(model: Path, trust: tuple[str, ...], trust_pickle: bool):
    """``(model, source)`` from a model file, as ``--model`` reads it: the source is what
    lineage records (file, sha256, format, trusted types) plus a skops file's bytes."""
    content = read_model_file(model)  # one read: what is loaded is what is hashed and stored
    loaded, fmt, trusted = load_model_data(content, model, trust=trust, trust_pickle=trust_pickle)
    source = {
        "file": model.name,
        "sha256": hashlib.sha256(content).hexdigest(),
        "format": fmt,
        "trusted": trusted,
        **({"bytes": content} if fmt == "skops" else {}),
    }
    return loaded, source


if __name__ == "__main__":
    sys.exit(typer.run(main))
