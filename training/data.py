"""Loading and checking training data: a data set bundled with scikit-learn, or a user's
CSV/Parquet; and deciding the task (classification or regression) from the target."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

DEFAULT_TARGET = "target"
# Data sets that ship inside scikit-learn (nothing downloads): for demos and tests.
DATASETS = {
    "breast_cancer": "load_breast_cancer",  # binary, 30 numeric features (the default)
    "wine": "load_wine",  # 3 classes, 13 numeric features
    "diabetes": "load_diabetes",  # regression, 10 numeric features
}
DEFAULT_DATASET = "breast_cancer"


class BadData(ValueError):
    """The data cannot be trained on; the message says why, in one line."""


@dataclass(frozen=True)
class Dataset:
    features: pd.DataFrame
    labels: pd.Series
    target: str
    sha256: str
    source: str
    task: str = "classification"


def load(
    path: Path | None, target: str | None, *, dataset: str | None = None, task: str = "auto"
) -> Dataset:
    """``path`` (with ``target``), else the bundled ``dataset``; ``task``: ``auto`` decides
    from the target column (``vigil.tasks.infer_task``)."""
    if path is None:
        return _bundled(dataset or DEFAULT_DATASET, task)
    digest = hashlib.sha256(read_bytes(path)).hexdigest()
    frame = read_frame(path)
    return check(frame, target or DEFAULT_TARGET, digest, str(path), task)


def fingerprint(frame: pd.DataFrame) -> str:
    """The sha256 of a frame's values, row by row (its index left out): the lineage's
    ``dataset_sha256`` of data that came as a frame rather than a file."""
    return hashlib.sha256(
        pd.util.hash_pandas_object(frame, index=False).values.tobytes()
    ).hexdigest()


def read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise BadData(f"{path}: no such file")
    return path.read_bytes()


def read_frame(path: Path) -> pd.DataFrame:
    """A .csv or .parquet file as a DataFrame; ``BadData`` saying why in one line."""
    read_bytes(path)
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise BadData(f"{path}: cannot be read: {str(exc).splitlines()[0]}") from exc
    raise BadData(f"{path}: expected a .csv or .parquet file")


def _bundled(name: str, task: str) -> Dataset:
    import sklearn.datasets

    if name not in DATASETS:
        raise BadData(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    frame = getattr(sklearn.datasets, DATASETS[name])(as_frame=True).frame
    # The bundled data has no file of its own: fingerprint its canonical CSV form.
    digest = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    return check(frame, DEFAULT_TARGET, digest, f"sklearn:{name}", task)


def check(
    frame: pd.DataFrame, target: str, sha256: str, source: str, task: str = "auto"
) -> Dataset:
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
    from vigil.tasks import get_task, infer_task

    try:
        chosen = get_task(infer_task(labels) if task == "auto" else task)
    except ValueError as exc:
        raise BadData(str(exc)) from None
    problem = chosen.target_problem(labels)
    if problem:
        raise BadData(f"{source}: target {target!r} {problem}")
    if len(frame) < 20:
        raise BadData(f"{source}: only {len(frame)} rows; need at least 20")
    for name in features.columns:
        _check_not_mixed(features[name], name, source)
    return Dataset(features, labels, target, sha256, source, chosen.name)


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
