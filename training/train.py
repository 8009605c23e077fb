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
import sys
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from training.data import DATASETS, DEFAULT_DATASET, BadData, Dataset, load
from training.pipeline import DEFAULT_ESTIMATOR, ESTIMATORS
from training.policy import DEFAULT_GATE, Gate, Outcome, decide
from vigil.registry import holdout
from vigil.tasks import CLASSIFICATION, CLASSIFIER, REGRESSION, Task, get_task

HOLDOUT_SHARE = 0.2
REFERENCE_MAX_ROWS = 5000


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

    ``build`` replaces ``training.pipeline.build_pipeline`` (called with schema, seed and
    n_estimators).
    """
    from training.pipeline import build_pipeline

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
