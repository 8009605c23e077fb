"""Data for the drift tests: a seeded mixed-type generator, breast-cancer resamples, and
filling an inference log with a model's real predictions.

The mixed generator makes both the training CSV and fresh windows, so a "no drift" window is
an independent draw from the distribution the model was trained on, not a resample of its
reference sample (which would share rows with it and look more alike than new data does).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

CATEGORIES = {
    "color": (["red", "green", "blue", "yellow"], [0.4, 0.3, 0.2, 0.1]),
    "region": (["north", "south", "east", "west", "central"], [0.3, 0.25, 0.2, 0.15, 0.1]),
    "plan": (["basic", "plus", "pro"], [0.6, 0.3, 0.1]),
    "member": (["yes", "no"], [0.7, 0.3]),
}


def mixed_frame(n: int, seed: int) -> pd.DataFrame:
    """``n`` rows of 6 numeric and 4 categorical features plus a binary ``target``.

    Covers what real logs hold: integer-valued columns with many ties (``age``, ``visits``),
    skewed ones (``income``, ``tenure``), and 5% missing values in ``balance``.
    """
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": np.clip(np.round(rng.normal(40, 12, n)), 18, 90),
            "income": rng.lognormal(10.5, 0.6, n).round(2),
            "balance": rng.normal(0, 1000, n).round(2),
            "visits": rng.poisson(3, n).astype(float),
            "score": rng.beta(2, 5, n),
            "tenure": rng.exponential(24, n).round(1),
        }
    )
    frame.loc[rng.random(n) < 0.05, "balance"] = np.nan
    for name, (values, probs) in CATEGORIES.items():
        frame[name] = rng.choice(values, size=n, p=probs)
    logit = (
        (np.log(frame["income"]) - 10.5) * 1.5
        + (frame["score"] - 0.3) * 4
        + frame["plan"].map({"basic": -0.5, "plus": 0.3, "pro": 1.0})
        + np.where(frame["member"] == "yes", 0.5, -0.5)
    )
    frame["target"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def write_mixed_csv(path: Path, n: int, seed: int) -> Path:
    mixed_frame(n, seed).to_csv(path, index=False)
    return path


def train_mixed(home: Path, rows: int, seed: int = 7) -> str:
    """Train and promote a model on a generated CSV of ``rows`` rows; returns its tag."""
    from training.data import load
    from training.train import train
    from vigil.settings import get_settings

    csv = write_mixed_csv(home / f"mixed-{rows}.csv", rows, seed)
    outcome = train(
        get_settings(home=home), load(csv, "target"), seed=seed, n_estimators=20, promote=True
    )
    assert outcome.promoted, outcome
    return outcome.model_tag


def breast_cancer_rows(n: int, seed: int, *, with_target: bool = False) -> pd.DataFrame:
    """``n`` rows drawn with replacement from all 569 rows of the data set (not only the
    model's reference sample); ``target`` kept when asked for (the ground truth to label)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True).frame
    if not with_target:
        data = data.drop(columns="target")
    return data.sample(n=n, replace=True, random_state=seed).reset_index(drop=True)


def breast_cancer_sd(feature: str) -> float:
    from sklearn.datasets import load_breast_cancer

    return float(load_breast_cancer(as_frame=True).frame[feature].std())


def fill_log(
    log,
    bundle,
    features: pd.DataFrame,
    *,
    model_version: str | None = None,
    created_at: float | None = None,
    request_rows: int = 100,
) -> list[str]:
    """Log ``features`` as answered by ``bundle``'s model (real predictions and probabilities),
    ``request_rows`` instances per request; returns the prediction ids. Missing values are
    logged as JSON null, as the service does."""
    from vigil.log.inference_log import LogRecord
    from vigil.log.prediction_ids import new_request_id
    from vigil.schema import to_frame

    schema = bundle.schema
    model_input = to_frame(schema, features)
    proba = bundle.pipeline.predict_proba(model_input)
    classes = [c.item() if hasattr(c, "item") else c for c in bundle.pipeline.classes_]
    records = features.astype(object).where(features.notna(), None).to_dict("records")
    instances = [{k: _plain(v) for k, v in record.items()} for record in records]
    predictions = [classes[i] for i in proba.argmax(axis=1).tolist()]
    proba = proba.round(6)
    now = created_at if created_at is not None else time.time()
    logged = []
    for start in range(0, len(instances), request_rows):
        rows = slice(start, start + request_rows)
        by_class = zip(classes, proba[rows].T, strict=True)
        logged.append(
            LogRecord(
                request_id=new_request_id(now),
                model_version=model_version or bundle.tag,
                created_at=now,
                instances=instances[rows],
                predictions=predictions[rows],
                probabilities={str(c): p.tolist() for c, p in by_class},
            )
        )
    log.write(logged)
    return [pid for record in logged for pid in record.prediction_ids]


def _plain(value):
    if value is None:
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value
