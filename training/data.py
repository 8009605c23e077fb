"""Loading and checking training data: the bundled default, or a user's CSV/Parquet."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

MAX_CLASSES = 50
DEFAULT_TARGET = "target"


class BadData(ValueError):
    """The data cannot be trained on; the message says why, in one line."""


@dataclass(frozen=True)
class Dataset:
    features: pd.DataFrame
    labels: pd.Series
    target: str
    sha256: str
    source: str


def load(path: Path | None, target: str | None) -> Dataset:
    if path is None:
        return _bundled()
    if not path.exists():
        raise BadData(f"{path}: no such file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            frame = pd.read_parquet(path)
        elif path.suffix.lower() == ".csv":
            frame = pd.read_csv(path)
        else:
            raise BadData(f"{path}: expected a .csv or .parquet file")
    except BadData:
        raise
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise BadData(f"{path}: cannot be read: {str(exc).splitlines()[0]}") from exc
    return check(frame, target or DEFAULT_TARGET, digest, str(path))


def _bundled() -> Dataset:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame
    # The bundled data has no file of its own: fingerprint its canonical CSV form.
    digest = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    return check(frame, DEFAULT_TARGET, digest, "sklearn:breast_cancer")


def check(frame: pd.DataFrame, target: str, sha256: str, source: str) -> Dataset:
    if frame.empty or len(frame.columns) == 0:
        raise BadData(f"{source}: no rows")
    if target not in frame.columns:
        raise BadData(
            f"{source}: target column {target!r} not found "
            f"(columns: {', '.join(map(str, frame.columns[:20]))})"
        )
    frame = frame.rename(columns=str)
    labels = frame[target]
    if labels.isna().any():
        raise BadData(f"{source}: target {target!r} is missing in {int(labels.isna().sum())} rows")
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise BadData(f"{source}: no feature columns besides the target {target!r}")
    classes = labels.nunique()
    if classes < 2:
        raise BadData(f"{source}: target {target!r} has a single class; need at least 2")
    if classes > MAX_CLASSES:
        raise BadData(
            f"{source}: target {target!r} has {classes} classes; at most {MAX_CLASSES} "
            "are supported (is it a regression target?)"
        )
    if len(frame) < 20:
        raise BadData(f"{source}: only {len(frame)} rows; need at least 20")
    for name in features.columns:
        _check_not_mixed(features[name], name, source)
    return Dataset(features, labels, target, sha256, source)


def _check_not_mixed(col: pd.Series, name: str, source: str) -> None:
    """A column that is mostly numbers with some text is a data error, not a category."""
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        return
    values = col.dropna()
    if values.empty:
        return
    numeric = pd.to_numeric(values, errors="coerce")
    parsed = numeric.notna()
    if parsed.mean() >= 0.8 and not parsed.all():
        bad = values[~parsed]
        raise BadData(
            f"{source}: column {name!r} is numeric but has text in {len(bad)} rows "
            f"(first: {bad.iloc[0]!r} at row {bad.index[0]})"
        )
