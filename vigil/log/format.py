"""The JSON layout of one logged request, and turning records back into rows.

A request's instances are stored column by column: ``{"feature": [value of instance 0, value
of instance 1, ...], ...}``; its probabilities the same way by class; its predictions as one
array. Each feature name is then written once per request, not once per instance: with the
default model's 30 features that is 216 bytes per instance instead of 757, and the store's own
cost grows with the bytes written. Position ``i`` of every array is the request's ``i``-th
instance (the last four hex digits of its prediction id).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import pydantic_core

from vigil.schema import record_columns

if TYPE_CHECKING:
    import pandas as pd

# One encoder for every value: json.dumps(..., allow_nan=False) builds a new one per call.
_STRICT_JSON = json.JSONEncoder(allow_nan=False)


def instance_columns(
    instances: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
) -> Mapping[str, Sequence[Any]]:
    """Instances as stored: by feature. Given as records (dicts) or already by feature."""
    return instances if isinstance(instances, Mapping) else record_columns(instances)


def dumps(value: Any) -> str:
    """JSON text as ``json.dumps(value, allow_nan=False)`` would write it (NaN and infinities
    raise ValueError), but through pydantic_core's encoder: several times faster for floats,
    and the service encodes every answered instance."""
    return dumps_bytes(value).decode()


def dumps_bytes(value: Any) -> bytes:
    """``dumps`` as UTF-8 bytes (what a response body is)."""
    try:
        out = pydantic_core.to_json(value)
    except (pydantic_core.PydanticSerializationError, ValueError):
        return _STRICT_JSON.encode(value).encode()
    if b"NaN" in out or b"Infinity" in out:  # a non-finite number, or just such a string
        return _STRICT_JSON.encode(value).encode()
    return out


# pydantic_core's parser gives the same values as json.loads, about 3x faster: parsing is most
# of the cost of reading a drift window.
loads = pydantic_core.from_json


def row(columns: Mapping[str, Sequence[Any]], offset: int) -> dict[str, Any]:
    """One instance of a decoded record's columns."""
    return {name: values[offset] for name, values in columns.items()}


class ColumnsBuilder:
    """Picked rows of many records, gathered column by column for one DataFrame.

    Records may differ in features (``labeled`` spans model versions): a feature missing from
    some of them is ``None`` there.
    """

    # Parsed records held before their values are moved into the flat columns: few enough that
    # the garbage collector does not keep walking them (a one-row record is 31 containers).
    _PENDING = 256

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {}
        self.rows = 0
        self.pending: list[Mapping[str, Sequence[Any]]] = []
        self.pending_rows = 0

    def add(self, columns: Mapping[str, Sequence[Any]], offsets: Sequence[int], size: int):
        """The rows at ``offsets`` (sorted, distinct) of a record of ``size`` rows."""
        if len(offsets) != size:
            columns = {name: [values[o] for o in offsets] for name, values in columns.items()}
        if self.pending and columns.keys() != self.pending[0].keys():
            self._flush()  # rare: records of other features (model versions) are not mixed
        if not self.pending:
            for name in columns:
                if name not in self.columns:
                    self.columns[name] = [None] * self.rows
        self.pending.append(columns)
        self.pending_rows += len(offsets)
        if len(self.pending) >= self._PENDING:
            self._flush()

    def _flush(self) -> None:
        """Move the pending records (all of the same features) into the flat columns."""
        for name, target in self.columns.items():
            if self.pending and name in self.pending[0]:
                # All in C: many one-row records cost little more than one big one.
                target.extend(chain.from_iterable(map(itemgetter(name), self.pending)))
            else:
                target.extend([None] * self.pending_rows)
        self.rows += self.pending_rows
        self.pending, self.pending_rows = [], 0

    def frame(self, extra: Iterable[tuple[str, list[Any]]] = ()) -> pd.DataFrame:
        import pandas as pd

        self._flush()
        frame = pd.DataFrame(self.columns, index=pd.RangeIndex(self.rows))
        for name, values in extra:
            frame[name] = values
        return frame
