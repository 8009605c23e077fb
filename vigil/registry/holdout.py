"""The trusted holdout: labeled rows that no caller of ``/feedback`` chose, kept with each model.

``training.train`` stores (a sample of) its test split in the model's contract. Retraining
never trains on it, judges the candidate against production on it as well as on a slice of
recent labeled traffic held out from training, and hands it to the candidate unchanged, so it
stays the original data's holdout however many times the model is retrained.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

CONTRACT_KEY = "holdout"
MAX_ROWS = 2000  # enough to see a few points of accuracy, small enough for contract.json


def to_contract(features: pd.DataFrame, labels: pd.Series, seed: int = 0) -> dict[str, Any]:
    """The holdout as JSON (columns, rows, labels), sampled down to ``MAX_ROWS``."""
    if len(features) > MAX_ROWS:
        features = features.sample(n=MAX_ROWS, random_state=seed)
    # Python values, so that json writes every float exactly (pandas' to_json keeps 10 digits:
    # a stored row would then differ from the one the model was scored on).
    rows = features.astype(object).where(features.notna(), None).to_numpy().tolist()
    return {
        "source": "training split",
        "columns": [str(c) for c in features.columns],
        "rows": rows,
        "labels": labels.loc[features.index].tolist(),
    }


def from_contract(contract: dict[str, Any]) -> tuple[pd.DataFrame, pd.Series] | None:
    """``(features, labels)`` stored with a model, or None for a model saved without one."""
    stored = contract.get(CONTRACT_KEY)
    if not stored or not stored.get("rows"):
        return None
    features = pd.DataFrame(stored["rows"], columns=stored["columns"])
    return features, pd.Series(stored["labels"], name="label")
