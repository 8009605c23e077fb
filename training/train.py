"""Train a model reproducibly, gate it on quality, save it with its contract, maybe promote.

    python -m training.train [--data PATH --target COLUMN | --dataset NAME]
        [--task auto|classification|regression]
        [--estimator random_forest|hist_gradient_boosting|linear] [--seed N] [--promote]

Prints one JSON line; exit 0 when a model was saved, 1 when it failed the quality gate
(saved, not promoted), 2 on bad input data (nothing saved). What differs between a classifier
and a regressor (metrics, gate, promotion rule, stored predictions) is ``vigil.tasks``'s.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from training import holdout
from training.data import DATASETS, DEFAULT_DATASET, BadData, Dataset, load
from training.model import DEFAULT_ESTIMATOR, ESTIMATORS
from vigil.tasks.base import CLASSIFICATION, CLASSIFIER, REGRESSION, Outputs, Task, get_task

HOLDOUT_SHARE = 0.2
REFERENCE_MAX_ROWS = 5000


@dataclass
class Outcome:
    model_tag: str
    metrics: dict[str, float]
    promoted: bool
    reason: str | None
    gate_passed: bool
    task: str = CLASSIFICATION
    # Production changed between reading it and promoting (``ProductionChanged``): exit 3.
    conflict: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model_tag": self.model_tag,
            "task": self.task,
            "metrics": self.metrics,
            "promoted": self.promoted,
        }
        if not self.promoted:
            out["reason"] = self.reason
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


@dataclass(frozen=True)
class Gate:
    """The least held-out figure a model needs, per task: accuracy for classifiers, R² for
    regressors (``Task.gate`` also asks it to beat the naive predictor)."""

    min_accuracy: float = 0.6
    min_r2: float = 0.1
    minimum: dict[str, float] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        by_task = {CLASSIFICATION: self.min_accuracy, REGRESSION: self.min_r2}
        object.__setattr__(self, "minimum", by_task)

    def check(self, task: Task, metrics: dict[str, Any], naive: dict[str, float]) -> str | None:
        """None when the model passes; otherwise why not."""
        return task.gate(metrics, naive, self.minimum[task.name])


DEFAULT_GATE = Gate()


def train(
    settings,
    dataset: Dataset,
    *,
    seed: int = 42,
    n_estimators: int = 100,
    estimator: str = DEFAULT_ESTIMATOR,
    promote: bool = False,
    gate: Gate = DEFAULT_GATE,
    build=None,
) -> Outcome:
    from sklearn.model_selection import train_test_split

    from vigil.schema import FeatureSchema, to_frame

    task = get_task(dataset.task)
    schema = FeatureSchema.infer(dataset.features, dataset.labels, dataset.target, task.name)
    features = to_frame(schema, dataset.features)
    labels = task.normalise_labels(dataset.labels)
    x_train, x_test, y_train, y_test = train_test_split(
        features,
        labels,
        test_size=HOLDOUT_SHARE,
        random_state=seed,
        stratify=task.stratify(labels),
    )
    return fit_and_decide(
        settings,
        schema,
        (x_train, y_train),
        (x_test, y_test),
        seed=seed,
        n_estimators=n_estimators,
        promote=promote,
        gate=gate,
        contract={
            "dataset_sha256": dataset.sha256,
            "dataset_source": dataset.source,
            # Retraining gates on it: rows no caller of /feedback can choose.
            holdout.CONTRACT_KEY: holdout.to_contract(x_test, y_test, seed),
        },
        build=build,
        task=task,
        estimator=estimator,
    )


def fit_and_decide(
    settings,
    schema,
    train_split: tuple,
    holdout: tuple,
    *,
    seed: int,
    n_estimators: int,
    promote: bool,
    gate: Gate,
    contract: dict[str, Any],
    build=None,
    task: Task = CLASSIFIER,
    estimator: str = DEFAULT_ESTIMATOR,
) -> Outcome:
    """Fit on ``train_split``, then decide as for any model (``decide``).

    ``build`` replaces ``training.model.build_pipeline`` (called with schema, seed and
    n_estimators).
    """
    from training.model import build_pipeline

    x_train, y_train = train_split
    make = build or partial(build_pipeline, task=task, estimator=estimator)
    pipeline = make(schema, seed=seed, n_estimators=n_estimators)
    pipeline.fit(x_train, y_train)
    reference = x_train.sample(
        n=min(len(x_train), REFERENCE_MAX_ROWS), random_state=seed
    ).sort_index()
    params = {
        "seed": seed,
        "n_estimators": n_estimators,
        "holdout_share": round(len(holdout[0]) / (len(holdout[0]) + len(x_train)), 6),
        "estimator": estimator if build is None else "custom",
        "estimator_class": type(pipeline.steps[-1][1]).__name__,
        "train_rows": len(x_train),
        "holdout_rows": len(holdout[0]),
    }
    return decide(
        settings,
        task,
        schema,
        pipeline,
        (reference, y_train.loc[reference.index]),
        holdout,
        naive=task.naive(y_train, holdout[1]),
        promote=promote,
        gate=gate,
        contract={"params": params, **contract},
    )


def decide(
    settings,
    task: Task,
    schema,
    model,
    reference: tuple,
    holdout: tuple,
    *,
    naive: dict[str, float],
    promote: bool,
    gate: Gate,
    contract: dict[str, Any],
    artifacts: dict[str, bytes] | None = None,
) -> Outcome:
    """Export ``model`` to ONNX (checked), score it on ``holdout`` with the runtime that will
    serve it, save it with the contract and the ``reference`` sample, and promote it when
    asked, when it passes the gate and when it is not worse than production on ``holdout``.
    ``artifacts``: further files to store (``training.register``: the model as skops)."""
    from training.onnx_export import export
    from vigil.estimate import fit_quality_estimators
    from vigil.registry.store import LABEL_COLUMN, NO_PRODUCTION, PREDICTION_COLUMN, Registry

    ref_x, ref_y = reference
    x_test, y_test = holdout
    features = ref_x[schema.names]
    # Compiled and checked here; metrics and reference predictions are the served runtime's.
    exported = export(model, schema, {"holdout": x_test, "reference": features}, task=task)
    classes = exported.classes
    held_out = exported.outputs(model, x_test)
    metrics = task.score(y_test.to_numpy(), held_out, classes)
    seed = (contract.get("params") or {}).get("seed", 0)
    estimators = fit_quality_estimators(task, held_out, x_test, y_test, seed, classes=classes)
    stored = task.reference_predictions(exported.outputs(model, features))
    sample = features.copy()
    sample[LABEL_COLUMN] = task.reference_predictions(Outputs(list(ref_y)))
    sample[PREDICTION_COLUMN] = stored

    contract = {
        "task": task.name,
        "schema": schema.to_dict(),
        "metrics": metrics,
        "naive": naive,
        "prediction_buckets": task.prediction_buckets(stored),
        "versions": _versions(),
        "git_commit": _git_commit(),
        "lineage": {},
        **exported.contract(),
        **estimators["contract"],
        **contract,
    }
    registry = Registry(settings)
    files = {**(artifacts or {}), **exported.artifacts(), **estimators["artifacts"]}
    sample = sample.reset_index(drop=True)
    tag = registry.save(model, contract, sample, artifacts=files)

    def outcome(promoted: bool, reason: str | None, passed: bool = True) -> Outcome:
        return Outcome(tag, metrics, promoted, reason, passed, task.name)

    failed = gate.check(task, metrics, naive)
    if failed:
        return outcome(False, f"quality gate: {failed}", passed=False)
    if not promote:
        return outcome(False, "not asked to promote (--promote)")
    expect = registry.production_tag() or NO_PRODUCTION  # what the comparison is against
    worse = _worse_than_production(registry, task, schema, metrics, x_test, y_test)
    if worse:
        return outcome(False, worse)
    return promote_if_unchanged(registry, tag, metrics, expect, task)


def promote_if_unchanged(
    registry, tag: str, metrics: dict, expect: str, task: Task = CLASSIFIER
) -> Outcome:
    """Promote ``tag`` if production is still ``expect``, the model it was compared with; an
    outcome with ``conflict`` (naming who changed production) otherwise."""
    from vigil.registry.store import ProductionChanged

    try:
        registry.promote(tag, expect=expect)
    except ProductionChanged as exc:
        return Outcome(tag, metrics, False, str(exc), True, task.name, conflict=True)
    return Outcome(tag, metrics, True, None, True, task.name)


def _worse_than_production(registry, task, schema, metrics, x_test, y_test) -> str | None:
    """Compare with the production model on the same held-out rows; None when not worse."""
    from vigil.registry.store import NoProductionModel

    try:
        current = registry.load_production()
    except NoProductionModel:
        return None
    if current.schema.names != schema.names or current.task is not task:
        return None  # a different data set or task: nothing to compare on
    worse = task.worse(metrics, score_served(current, x_test, y_test))
    return f"not better than production {current.tag}: {worse}" if worse else None


def score_served(bundle, x_test, y_test) -> dict[str, float | None]:
    """The held-out metrics of what serves ``bundle``: its verified ONNX model, if any."""
    from training.model import classes_of
    from vigil.onnx_model import OnnxModel, verified_onnx

    task = bundle.task
    content, _ = verified_onnx(bundle)
    if content is None:
        classes = classes_of(bundle.pipeline)
        outputs = task.outputs(task.raw(bundle.pipeline, x_test), classes)
    else:
        classes = bundle.contract["onnx"]["classes"]
        raw = OnnxModel(content, bundle.schema, classes).predict_raw_frame(x_test)
        outputs = task.outputs(raw, classes)
    return task.score(y_test.to_numpy(), outputs, classes)


def _versions() -> dict[str, str]:
    import bentoml
    import numpy
    import pandas
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
        "bentoml": bentoml.__version__,
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


# Options training.register shares.
PromoteOption = Annotated[
    bool, typer.Option("--promote", help="Make it production if it passes the gates")
]
MinAccuracyOption = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Quality gate: least held-out accuracy")
]
MinR2Option = Annotated[
    float, typer.Option(max=1.0, help="Quality gate: least held-out R² (regressors)")
]
Dataset_ = Enum("Dataset_", {name: name for name in DATASETS}, type=str)
TaskChoice = Enum("TaskChoice", {n: n for n in ("auto", CLASSIFICATION, REGRESSION)}, type=str)
Estimator = Enum("Estimator", {name: name for name in ESTIMATORS}, type=str)
DEFAULT_ESTIMATOR_CHOICE = Estimator(DEFAULT_ESTIMATOR)


def main(
    data: Annotated[
        Path | None, typer.Option(help="Training data, .csv or .parquet (default: --dataset)")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Target column of --data (default: 'target')")
    ] = None,
    dataset: Annotated[
        Dataset_ | None,
        typer.Option(help=f"Data bundled with scikit-learn (default: {DEFAULT_DATASET})"),
    ] = None,
    task: Annotated[
        TaskChoice, typer.Option(help="auto: decided from the target column")
    ] = TaskChoice.auto,
    estimator: Annotated[
        Estimator, typer.Option(help="linear: logistic regression or ridge, with scaling")
    ] = DEFAULT_ESTIMATOR_CHOICE,
    seed: Annotated[int, typer.Option(help="Random seed: same data and seed, same model")] = 42,
    promote: PromoteOption = False,
    n_estimators: Annotated[int, typer.Option(min=1, help="Trees in a random forest")] = 100,
    min_accuracy: MinAccuracyOption = DEFAULT_GATE.min_accuracy,
    min_r2: MinR2Option = DEFAULT_GATE.min_r2,
) -> None:
    """Train, evaluate on a held-out split, save to the model store, optionally promote."""
    from vigil.settings import get_settings

    if data is not None and dataset is not None:
        typer.echo("error: give --data or --dataset, not both", err=True)
        raise typer.Exit(2)
    settings = get_settings()
    try:
        loaded = load(data, target, dataset=dataset.value if dataset else None, task=task.value)
    except BadData as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    outcome = train(
        settings,
        loaded,
        seed=seed,
        n_estimators=n_estimators,
        estimator=estimator.value,
        promote=promote,
        gate=Gate(min_accuracy=min_accuracy, min_r2=min_r2),
    )
    from training.mlflow.tracking import json_line

    typer.echo(json.dumps(json_line(settings, outcome, "train")))
    exit_for(outcome)


def exit_for(outcome: Outcome) -> None:
    """Exit 1 when the gate failed, 3 when production changed under the run (stderr says
    who changed it); return (exit 0) otherwise."""
    if outcome.conflict:
        typer.echo(f"error: {outcome.reason}", err=True)
        raise typer.Exit(3)
    if not outcome.gate_passed:
        raise typer.Exit(1)


if __name__ == "__main__":
    sys.exit(typer.run(main))
