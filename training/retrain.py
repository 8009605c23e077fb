"""Retrain on the reference data plus recent labeled traffic, and promote only if better.

    python -m training.retrain [--window-rows N] [--holdout-share F] [--min-labels N]

The candidate and the production model are scored on the same holdout of recent labeled rows
(the data the model now faces), so a model that learned the new distribution wins and one that
did not is kept out. Lineage (parent model, data windows, fingerprints) goes into the contract.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Annotated, Any

import pandas as pd
import typer

from training.train import DEFAULT_GATE, Gate, Outcome, fit_and_decide, normalise_labels


class NotEnoughLabels(RuntimeError):
    pass


def _fingerprint(frame: pd.DataFrame) -> str:
    return hashlib.sha256(
        pd.util.hash_pandas_object(frame, index=False).values.tobytes()
    ).hexdigest()


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
) -> Outcome:
    from sklearn.model_selection import train_test_split

    from vigil.inference_log import InferenceLog
    from vigil.registry import LABEL_COLUMN, Registry
    from vigil.schema import FeatureSchema, to_frame

    registry = Registry(settings)
    parent = registry.load_production()
    old_schema = parent.schema
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
    recent_y = normalise_labels(recent["label"])
    stratify = recent_y if recent_y.value_counts().min() >= 2 else None
    new_x, holdout_x, new_y, holdout_y = train_test_split(
        recent_x, recent_y, test_size=holdout_share, random_state=seed, stratify=stratify
    )

    reference = parent.reference
    ref_x = to_frame(old_schema, reference)
    ref_y = normalise_labels(reference[LABEL_COLUMN].map(_as_class(old_schema.classes)))
    train_x = pd.concat([ref_x, new_x], ignore_index=True)
    train_y = pd.concat([ref_y, new_y], ignore_index=True)
    # Categories and ranges seen in recent traffic become part of the new contract.
    schema = FeatureSchema.infer(train_x, train_y, old_schema.target)
    train_x = to_frame(schema, train_x)

    lineage: dict[str, Any] = {
        "parent": parent.tag,
        "reference_rows": len(ref_x),
        "reference_sha256": _fingerprint(ref_x),
        "recent_rows": len(recent),
        "recent_train_rows": len(new_x),
        "recent_holdout_rows": len(holdout_x),
        "recent_window": {
            "from": float(recent["created_at"].min()),
            "to": float(recent["created_at"].max()),
            "model_versions": sorted(set(recent["model_version"])),
        },
        "recent_sha256": _fingerprint(recent_x),
    }
    return fit_and_decide(
        settings,
        schema,
        (train_x, train_y),
        (to_frame(schema, holdout_x), holdout_y),
        seed=seed,
        n_estimators=n_estimators,
        promote=promote,
        gate=gate,
        contract={
            "dataset_sha256": _fingerprint(pd.concat([ref_x, recent_x], ignore_index=True)),
            "dataset_source": f"retrain of {parent.tag}",
            "lineage": lineage,
        },
    )


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
) -> None:
    """Train a candidate on reference + recent labeled data; promote it if it beats production."""
    from vigil.inference_log import InferenceLogError
    from vigil.registry import NoProductionModel
    from vigil.settings import get_settings

    try:
        outcome = retrain(
            get_settings(),
            window_rows=window_rows,
            holdout_share=holdout_share,
            min_labels=min_labels,
            seed=seed,
            promote=promote,
        )
    except (NotEnoughLabels, NoProductionModel, InferenceLogError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(outcome.to_json())
    if not outcome.gate_passed:
        raise typer.Exit(1)


if __name__ == "__main__":
    sys.exit(typer.run(main))
