"""Train a model reproducibly, gate it on quality, save it with its contract, maybe promote.

    python -m training.train [--data PATH --target COLUMN] [--seed N] [--promote]

Prints one JSON line; exit 0 when a model was saved, 1 when it failed the quality gate
(saved, not promoted), 2 on bad input data (nothing saved).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from training import holdout
from training.data import BadData, Dataset, load

HOLDOUT_SHARE = 0.2
REFERENCE_MAX_ROWS = 5000


@dataclass
class Outcome:
    model_tag: str
    metrics: dict[str, float]
    promoted: bool
    reason: str | None
    gate_passed: bool
    # Production changed between reading it and promoting (``ProductionChanged``): exit 3.
    conflict: bool = False

    def to_json(self) -> str:
        out: dict[str, Any] = {
            "model_tag": self.model_tag,
            "metrics": self.metrics,
            "promoted": self.promoted,
        }
        if not self.promoted:
            out["reason"] = self.reason
        return json.dumps(out)


@dataclass(frozen=True)
class Gate:
    min_accuracy: float = 0.6

    def check(self, metrics: dict[str, float], baseline_accuracy: float) -> str | None:
        """None when the model passes; otherwise why not."""
        if metrics["accuracy"] < self.min_accuracy:
            return f"accuracy {metrics['accuracy']:.4f} is below the gate's {self.min_accuracy}"
        if metrics["accuracy"] <= baseline_accuracy:
            return (
                f"accuracy {metrics['accuracy']:.4f} does not beat always predicting the "
                f"majority class ({baseline_accuracy:.4f})"
            )
        return None


DEFAULT_GATE = Gate()


def train(
    settings,
    dataset: Dataset,
    *,
    seed: int = 42,
    n_estimators: int = 100,
    promote: bool = False,
    gate: Gate = DEFAULT_GATE,
    build=None,
) -> Outcome:
    from sklearn.model_selection import train_test_split

    from vigil.schema import FeatureSchema, to_frame

    schema = FeatureSchema.infer(dataset.features, dataset.labels, dataset.target)
    features = to_frame(schema, dataset.features)
    labels = normalise_labels(dataset.labels)
    stratify = labels if labels.value_counts().min() >= 2 else None
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=HOLDOUT_SHARE, random_state=seed, stratify=stratify
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
) -> Outcome:
    """Fit on ``train_split``, score on ``holdout``, save with the contract, maybe promote.

    Promotion needs the quality gate passed and no loss against production on ``holdout``.
    ``build`` replaces ``training.model.build_pipeline`` (same signature).
    """
    from training.model import build_pipeline, score_proba
    from training.onnx_export import export
    from vigil.registry import LABEL_COLUMN, NO_PRODUCTION, PREDICTION_COLUMN, Registry

    x_train, y_train = train_split
    x_test, y_test = holdout
    pipeline = (build or build_pipeline)(schema, seed=seed, n_estimators=n_estimators)
    pipeline.fit(x_train, y_train)
    baseline = float(y_test.value_counts(normalize=True).max())

    reference = x_train.sample(
        n=min(len(x_train), REFERENCE_MAX_ROWS), random_state=seed
    ).sort_index()
    features = reference[schema.names]
    # Compiled and checked here; metrics and reference predictions are the served runtime's.
    exported = export(pipeline, schema, {"holdout": x_test, "reference": features})
    proba, top = exported.predict(pipeline, x_test)
    metrics = score_proba(proba, top, pipeline.classes_, y_test)
    _, reference_top = exported.predict(pipeline, features)
    reference[LABEL_COLUMN] = y_train.loc[reference.index].astype(str)
    reference[PREDICTION_COLUMN] = pipeline.classes_[reference_top].astype(str)

    contract = {
        "schema": schema.to_dict(),
        "metrics": metrics,
        "baseline_accuracy": round(baseline, 6),
        "params": {
            "seed": seed,
            "n_estimators": n_estimators,
            "holdout_share": round(len(x_test) / (len(x_test) + len(x_train)), 6),
            "estimator": "RandomForestClassifier",
            "train_rows": len(x_train),
            "holdout_rows": len(x_test),
        },
        "versions": _versions(),
        "git_commit": _git_commit(),
        "lineage": {},
        **exported.contract(),
        **contract,
    }
    registry = Registry(settings)
    tag = registry.save(
        pipeline, contract, reference.reset_index(drop=True), artifacts=exported.artifacts()
    )

    failed = gate.check(metrics, baseline)
    if failed:
        return Outcome(tag, metrics, False, f"quality gate: {failed}", gate_passed=False)
    if not promote:
        return Outcome(tag, metrics, False, "not asked to promote (--promote)", gate_passed=True)
    expect = registry.production_tag() or NO_PRODUCTION  # what the comparison is against
    worse = _worse_than_production(registry, schema, metrics, x_test, y_test)
    if worse:
        return Outcome(tag, metrics, False, worse, gate_passed=True)
    return promote_if_unchanged(registry, tag, metrics, expect)


def promote_if_unchanged(registry, tag: str, metrics: dict, expect: str) -> Outcome:
    """Promote ``tag`` if production is still ``expect``, the model it was compared with; an
    outcome with ``conflict`` (naming who changed production) otherwise."""
    from vigil.registry import ProductionChanged

    try:
        registry.promote(tag, expect=expect)
    except ProductionChanged as exc:
        return Outcome(tag, metrics, False, str(exc), gate_passed=True, conflict=True)
    return Outcome(tag, metrics, True, None, gate_passed=True)


def _worse_than_production(registry, schema, metrics, x_test, y_test) -> str | None:
    """Compare with the production model on the same held-out rows; None when not worse."""
    from vigil.registry import NoProductionModel

    try:
        current = registry.load_production()
    except NoProductionModel:
        return None
    if current.schema.names != schema.names:
        return None  # a different data set: nothing to compare on
    theirs = _score_served(current, x_test, y_test)
    for name in ("accuracy", "f1"):
        if metrics[name] < theirs[name]:
            return (
                f"not better than production {current.tag}: held-out {name} "
                f"{metrics[name]:.4f} < {theirs[name]:.4f}"
            )
    return None


def _score_served(bundle, x_test, y_test) -> dict[str, float | None]:
    """The held-out metrics of what serves ``bundle``: its verified ONNX model, if any."""
    import numpy as np

    from training.model import score, score_proba
    from vigil.onnx_model import OnnxModel, verified_onnx
    from vigil.task import top_class as top

    content, _ = verified_onnx(bundle)
    if content is None:
        return score(bundle.pipeline, x_test, y_test)
    classes = bundle.contract["onnx"]["classes"]
    proba = np.clip(OnnxModel(content, bundle.schema, classes).predict_raw_frame(x_test), 0, 1)
    return score_proba(proba, top(proba), classes, y_test)


def normalise_labels(labels):
    """Integral labels as int64, anything else as text: the service answers with these."""
    from vigil.schema import _plain

    plain = labels.map(_plain)
    if all(isinstance(v, int) for v in plain):
        return plain.astype("int64")
    return plain.astype(str)


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


def main(
    data: Annotated[
        Path | None, typer.Option(help="Training data, .csv or .parquet (default: bundled)")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Target column of --data (default: 'target')")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same data and seed, same model")] = 42,
    promote: Annotated[
        bool, typer.Option("--promote", help="Make it production if it passes the gates")
    ] = False,
    n_estimators: Annotated[int, typer.Option(min=1, help="Trees in the forest")] = 100,
    min_accuracy: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Quality gate: least held-out accuracy")
    ] = 0.6,
) -> None:
    """Train, evaluate on a held-out split, save to the model store, optionally promote."""
    from vigil.settings import get_settings

    settings = get_settings()
    try:
        dataset = load(data, target)
    except BadData as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    outcome = train(
        settings,
        dataset,
        seed=seed,
        n_estimators=n_estimators,
        promote=promote,
        gate=Gate(min_accuracy=min_accuracy),
    )
    typer.echo(outcome.to_json())
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
