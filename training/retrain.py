"""Retrain on the reference data plus recent labeled traffic, and promote only if better.

    python -m training.retrain [--window-rows N] [--holdout-share F] [--min-labels N]

Whoever can post ``/feedback`` labels chooses the recent traffic, so the gate does not rest on it
alone. The candidate must beat (or equal) production on two holdouts, neither trained on:

- the trusted holdout stored with the production model (``vigil.registry.holdout``: the original
  training split, carried unchanged from model to model), where it may lose at most
  ``trusted_tolerance`` (of accuracy or F1; relative, of RMSE) (the world may have moved away
  from it a little);
- a share of the recent labeled rows held out from training (the data the model now faces).

Works for either task: the metrics compared and their direction are ``vigil.tasks``'s. Lineage
(parent model, data windows, fingerprints) goes into the contract.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import pandas as pd
import typer

from training.data import fingerprint
from training.policy import DEFAULT_GATE, Gate, Outcome, promote_if_unchanged
from training.train import exit_for, fit_and_decide
from vigil.registry import holdout

# What a candidate may lose on the trusted holdout and still be promoted: this much accuracy
# or F1, or this share of RMSE.
TRUSTED_TOLERANCE = 0.05


class NotEnoughLabels(RuntimeError):
    pass


class NoTrustedHoldout(RuntimeError):
    pass


def retrain(
    settings,
    *,
    window_rows: int = 5000,
    holdout_share: float = 0.3,
    min_labels: int = 50,
    seed: int = 42,
    n_estimators: int = 100,
    promote: bool = True,
    gate: Gate = DEFAULT_GATE,
    trusted_tolerance: float = TRUSTED_TOLERANCE,
) -> Outcome:
    from sklearn.model_selection import train_test_split

    from vigil.log.inference_log import InferenceLog
    from vigil.registry.store import LABEL_COLUMN, Registry
    from vigil.schema import FeatureSchema, to_frame

    registry = Registry(settings)
    parent = registry.load_production()
    task = parent.task
    old_schema = parent.schema
    trusted = holdout.from_contract(parent.contract)
    if trusted is None:
        raise NoTrustedHoldout(
            f"{parent.tag} was saved without a trusted holdout (an earlier build): train a model "
            "with `make train` (python -m training.train --promote), then retrain"
        )
    log = InferenceLog.from_settings(settings)
    try:
        log.create_schema()  # a fresh home has no log yet: that is "no labels", not an error
        recent = log.labeled(None, window_rows)
    finally:
        log.close()
    if len(recent) < min_labels:
        raise NotEnoughLabels(
            f"{len(recent)} labeled rows in the log; retraining needs at least {min_labels}"
        )
    recent_x = to_frame(old_schema, recent)
    recent_y = task.normalise_labels(recent["label"])
    new_x, holdout_x, new_y, holdout_y = train_test_split(
        recent_x,
        recent_y,
        test_size=holdout_share,
        random_state=seed,
        stratify=task.stratify(recent_y),
    )

    reference = parent.reference
    ref_x = to_frame(old_schema, reference)
    ref_y = task.normalise_labels(reference[LABEL_COLUMN].map(_as_class(old_schema.classes)))
    train_x = pd.concat([ref_x, new_x], ignore_index=True)
    train_y = pd.concat([ref_y, new_y], ignore_index=True)
    # Categories and ranges seen in recent traffic become part of the new contract.
    schema = FeatureSchema.infer(train_x, train_y, old_schema.target, task.name)
    train_x = to_frame(schema, train_x)

    lineage: dict[str, Any] = {
        "parent": parent.tag,
        "reference_rows": len(ref_x),
        "reference_sha256": fingerprint(ref_x),
        "recent_rows": len(recent),
        "recent_train_rows": len(new_x),
        "recent_holdout_rows": len(holdout_x),
        "recent_window": {
            "from": float(recent["created_at"].min()),
            "to": float(recent["created_at"].max()),
            "model_versions": sorted(set(recent["model_version"])),
        },
        "recent_sha256": fingerprint(recent_x),
    }
    candidate = fit_and_decide(
        settings,
        schema,
        (train_x, train_y),
        (to_frame(schema, holdout_x), holdout_y),
        seed=seed,
        n_estimators=n_estimators,
        promote=False,  # the gate below decides, on both holdouts
        gate=gate,
        task=task,
        estimator=_estimator_of(parent),
        contract={
            "dataset_sha256": fingerprint(pd.concat([ref_x, recent_x], ignore_index=True)),
            "dataset_source": f"retrain of {parent.tag}",
            "lineage": lineage,
            holdout.CONTRACT_KEY: parent.contract[holdout.CONTRACT_KEY],  # passed on unchanged
        },
    )
    if not candidate.gate_passed:
        return candidate
    trusted_x, trusted_y = trusted
    holdouts = {
        "trusted holdout": (trusted_x, task.normalise_labels(trusted_y), trusted_tolerance),
        "recent holdout": (holdout_x, holdout_y, 0.0),
    }
    worse = _worse_than(registry.load(candidate.model_tag), parent, holdouts)
    if promote and worse is None:
        # Only if production is still the parent it was trained from and compared with: a
        # rollback made meanwhile is not undone.
        return promote_if_unchanged(
            registry, candidate.model_tag, candidate.metrics, parent.tag, task
        )
    reason = worse if promote else "not asked to promote (--promote)"
    return Outcome(
        candidate.model_tag, candidate.metrics, False, reason, gate_passed=True, task=task.name
    )


def _worse_than(candidate, production, holdouts: dict) -> str | None:
    """Why ``candidate`` loses to ``production`` on one of ``holdouts`` (name: features,
    labels, tolerance), each read in each model's own schema; None when it does not."""
    from training.pipeline import score
    from vigil.schema import to_frame

    task = production.task
    for name, (features, labels, tolerance) in holdouts.items():
        ours = score(candidate.pipeline, to_frame(candidate.schema, features), labels, task)
        theirs = score(production.pipeline, to_frame(production.schema, features), labels, task)
        worse = task.worse(ours, _loosened(task, theirs, tolerance))
        if worse:
            return f"not better than production {production.tag} on the {name}: {worse}" + (
                f" (tolerance {tolerance})" if tolerance else ""
            )
    return None


def _loosened(task, metrics: dict, tolerance: float) -> dict:
    """``metrics`` made easier to match: a score (higher is better, in [0, 1]) lowered by
    ``tolerance``, an error (lower is better, in the target's units) raised by that share."""
    return {
        name: value
        if value is None or name not in task.higher_is_better
        else value - tolerance
        if task.higher_is_better[name]
        else value * (1 + tolerance)
        for name, value in metrics.items()
    }


def _estimator_of(parent) -> str:
    """The parent's estimator kind; a model registered from elsewhere is retrained as
    ``training.train``'s default (its own code is not ours to refit)."""
    from training.pipeline import DEFAULT_ESTIMATOR, ESTIMATORS

    kind = (parent.contract.get("params") or {}).get("estimator")
    return kind if kind in ESTIMATORS else DEFAULT_ESTIMATOR


def _as_class(classes: tuple) -> Any:
    """The reference keeps labels as text; map them back to the model's class values."""
    by_text = {str(c): c for c in classes}
    return lambda text: by_text.get(text, text)


def main(
    window_rows: Annotated[int, typer.Option(min=1, help="Newest labeled rows to use")] = 5000,
    holdout_share: Annotated[
        float, typer.Option(min=0.05, max=0.9, help="Share of them held out for the comparison")
    ] = 0.3,
    min_labels: Annotated[int, typer.Option(min=2, help="Fewest labeled rows to retrain")] = 50,
    seed: Annotated[int, typer.Option(help="Random seed")] = 42,
    promote: Annotated[bool, typer.Option(help="Promote the candidate if it wins")] = True,
    trusted_tolerance: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Accuracy/F1 it may lose on the trusted holdout"),
    ] = TRUSTED_TOLERANCE,
) -> None:
    """Train a candidate on reference + recent labeled data; promote it if it beats production."""
    from vigil.log.inference_log import InferenceLogError
    from vigil.registry.store import NoProductionModel
    from vigil.settings import get_settings

    settings = get_settings()
    try:
        outcome = retrain(
            settings,
            window_rows=window_rows,
            holdout_share=holdout_share,
            min_labels=min_labels,
            seed=seed,
            promote=promote,
            trusted_tolerance=trusted_tolerance,
        )
    except (NotEnoughLabels, NoTrustedHoldout, NoProductionModel, InferenceLogError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    from training.mlflow.tracking import json_line

    typer.echo(json.dumps(json_line(settings, outcome, "retrain")))
    exit_for(outcome)


if __name__ == "__main__":
    sys.exit(typer.run(main))
