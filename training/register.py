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

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from training.data import BadData, fingerprint, read_frame
from training.model_file import BadModel, load_source
from training.policy import DEFAULT_GATE, Gate, Outcome, decide
from training.train import REFERENCE_MAX_ROWS, MinAccuracyOption, MinR2Option, PromoteOption
from vigil.registry import holdout as trusted_holdout
from vigil.text import one_line


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

    outcome = register_loaded(
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


def register_loaded(model, reference, holdout, *, task, promote, settings, gate, source) -> Outcome:
    """Check, gate, export and save a model already loaded (from a file, from MLflow or from
    Python); ``reference`` and ``holdout`` are ``(features, labels)``."""
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
        outcome = register_loaded(
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


if __name__ == "__main__":
    sys.exit(typer.run(main))
