"""The model's feature schema: names, kinds, allowed categories and observed ranges.

Saved with every model and used by the service to validate requests, so that a user's own
model needs no code change, and by the monitor to pick a drift test per feature.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

from vigil.tasks.labels import Label

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Kind
    categories: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class FeatureSchema:
    features: tuple[Feature, ...]
    target: str
    classes: tuple[Label, ...]
    _by_name: dict[str, Feature] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({f.name: f for f in self.features})

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    def __getitem__(self, name: str) -> Feature:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "classes": list(self.classes),
            "features": [{**asdict(f), "categories": list(f.categories)} for f in self.features],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSchema:
        return cls(
            features=tuple(
                Feature(
                    name=f["name"],
                    kind=f["kind"],
                    categories=tuple(f.get("categories") or ()),
                    min=f.get("min"),
                    max=f.get("max"),
                )
                for f in data["features"]
            ),
            target=data["target"],
            classes=tuple(data["classes"]),
        )

    @classmethod
    def infer(
        cls, features: pd.DataFrame, labels: pd.Series, target: str, task: str = "classification"
    ) -> FeatureSchema:
        """Numeric dtypes are numeric; everything else (strings, booleans) is categorical. The
        classes are the task's (``vigil.tasks``): none for a regressor."""
        import pandas as pd

        from vigil.tasks import get_task

        out = []
        for name in features.columns:
            col = features[name]
            if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
                finite = col[col.map(lambda v: v is not None and math.isfinite(v))]
                out.append(
                    Feature(
                        name=str(name),
                        kind="numeric",
                        min=float(finite.min()) if len(finite) else None,
                        max=float(finite.max()) if len(finite) else None,
                    )
                )
            else:
                cats = sorted({str(v) for v in col.dropna().unique()})
                out.append(Feature(name=str(name), kind="categorical", categories=tuple(cats)))
        return cls(features=tuple(out), target=target, classes=get_task(task).classes(labels))


def record_columns(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Records (dicts) as one list of values per key. Validated requests all have the same keys
    (the fast path); otherwise every key seen gets a column, ``None`` where it was absent."""
    if not records:
        return {}
    names = list(records[0])
    width = len(names)
    if width > 1 and set(map(len, records)) == {width}:
        try:
            # Same size and every name present: same keys. The transposition runs in C.
            rows = map(itemgetter(*names), records)
            return dict(zip(names, map(list, zip(*rows, strict=True)), strict=True))
        except KeyError:
            pass
    names = list(dict.fromkeys(name for record in records for name in record))
    return {name: [record.get(name) for record in records] for name in names}


def to_frame(schema: FeatureSchema, records: list[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Model input in schema order: numeric as float64, categorical as text, missing as NaN.

    Training, the service and the monitor all pass data through here, so the pipeline sees
    the same types whatever the source (CSV, JSON request, inference log).
    """
    import pandas as pd

    if isinstance(records, pd.DataFrame):
        return _general_frame(schema, records)
    return columns_to_frame(schema, record_columns(records), len(records))


def columns_to_frame(
    schema: FeatureSchema, columns: Mapping[str, Sequence[Any]], rows: int
) -> pd.DataFrame:
    """``to_frame`` of records already split into columns (``record_columns``): the service
    splits a batch once, for the model and for the inference log."""
    import pandas as pd

    fast = _plain_columns_frame(schema, columns, rows)
    if fast is not None:
        return fast
    return _general_frame(schema, pd.DataFrame(dict(columns), index=pd.RangeIndex(rows)))


def _general_frame(schema: FeatureSchema, frame: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    out = {}
    for feature in schema.features:
        col = (
            frame[feature.name]
            if feature.name in frame
            else pd.Series([None] * len(frame), index=frame.index, dtype=object)
        )
        if feature.kind == "numeric":
            out[feature.name] = pd.to_numeric(col, errors="coerce").astype("float64")
        else:
            out[feature.name] = (
                col.map(_category, na_action="ignore")
                .astype(object)
                .where(col.notna(), float("nan"))
            )
    return pd.DataFrame(out, index=frame.index)


def _category(value: Any) -> str:
    # 3.0 read from a CSV and 3 sent as JSON are the same category.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_NUMBER_TYPES = frozenset({int, float, type(None)})
_TEXT_TYPES = frozenset({str, type(None)})


def _plain_columns_frame(
    schema: FeatureSchema, columns: Mapping[str, Sequence[Any]], rows: int
) -> pd.DataFrame | None:
    """``to_frame`` for the service's already-validated records (numbers, strings, None), about
    ten times faster than going through pandas per column; None when any value needs the
    general conversion (text in a numeric column, numbers in a categorical one, ...)."""
    import numpy as np
    import pandas as pd

    out = {}
    absent = [None] * rows
    for feature in schema.features:
        values = columns.get(feature.name, absent)
        if feature.kind == "numeric":
            if not set(map(type, values)) <= _NUMBER_TYPES:
                return None
            out[feature.name] = np.array(
                [math.nan if v is None else v for v in values], dtype="float64"
            )
        else:
            if not set(map(type, values)) <= _TEXT_TYPES:
                return None
            out[feature.name] = np.array(
                [math.nan if v is None else v for v in values], dtype=object
            )
    return pd.DataFrame(out, index=pd.RangeIndex(rows))
