"""A request's tensors as the instances ``service.validation`` checks, in either form:

- one input per feature, named as the feature, shape ``[rows]`` or ``[rows, 1]`` (MLServer's
  and KServe's ``content_type: pd``); categories as BYTES;
- one 2-D numeric tensor ``[rows, features]``, columns in the order the model's metadata lists
  (all-numeric models only).

Missing values: ``null`` in JSON data (any datatype); NaN in binary FP16/FP32/FP64 data
(binary data has no null). Validation's problems come back naming the input, the row and, for
the 2-D form, the column's feature; never a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from service.errors import ApiError
from service.v2.tensors import ProtocolError, Tensor
from service.validation import Instances

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMBER_TYPES = frozenset({int, float})


def instances(inputs: list[Tensor], names: Sequence[str], numeric: Sequence[str]) -> list[dict]:
    """One dict of feature values per row (None: missing), for ``InstanceValidator``."""
    if check_form(inputs, names, numeric):
        return _by_feature(inputs, names)
    return _by_tensor(inputs[0], names)


def check_form(inputs: list[Tensor], names: Sequence[str], numeric: Sequence[str]) -> bool:
    """Refuse inputs whose names, shapes or datatypes do not fit the model; needs no data, so
    it runs before any binary data is decoded. True: one input per feature; False: one 2-D
    tensor."""
    features = set(names)
    if all(t.name in features for t in inputs):
        _check_by_feature(inputs, names, numeric)
        return True
    if len(inputs) == 1 and len(inputs[0].shape) == 2:
        _check_tensor(inputs[0], names, numeric)
        return False
    stray = next(t.name for t in inputs if t.name not in features)
    raise ProtocolError(
        400,
        f"input {stray[:100]!r} is not a feature of the model: send one input per feature, or "
        "one [rows, features] tensor (GET /v2/models/vigil-model lists them)",
        "unknown_field",
    )


def _check_by_feature(inputs: list[Tensor], names: Sequence[str], numeric: Sequence[str]) -> None:
    sent = {t.name: t for t in inputs}
    missing = [name for name in names if name not in sent]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ProtocolError(
            400, f"input {missing[0]!r} required: one input per feature{more}", "missing_field"
        )
    rows = inputs[0].rows
    numbers = set(numeric)
    for tensor in inputs:
        if len(tensor.shape) == 2 and tensor.shape[1] != 1:
            raise ProtocolError(
                400, f"input {tensor.name!r}: shape must be [rows] or [rows, 1]", "wrong_type"
            )
        if tensor.rows != rows:
            raise ProtocolError(
                400,
                f"input {tensor.name!r}: {tensor.rows} rows, but input {inputs[0].name!r} has "
                f"{rows}",
                "wrong_type",
            )
        # Binary text for a number is refused before it is decoded (JSON text goes on to the
        # row check, which names the row).
        if tensor.datatype == "BYTES" and tensor.name in numbers and _binary(tensor):
            raise ProtocolError(
                400, f"input {tensor.name!r}: expected a numeric datatype", "wrong_type"
            )


def _check_tensor(tensor: Tensor, names: Sequence[str], numeric: Sequence[str]) -> None:
    where = f"input {tensor.name[:100]!r}"
    if len(numeric) != len(names):
        raise ProtocolError(
            400,
            f"{where}: the model has categorical features; send one input per feature",
            "wrong_type",
        )
    if tensor.shape[1] != len(names):
        raise ProtocolError(
            400,
            f"{where}: {tensor.shape[1]} columns; the model takes {len(names)} features",
            "wrong_type",
        )
    if tensor.datatype == "BYTES":
        raise ProtocolError(400, f"{where}: expected a numeric datatype", "wrong_type")


def _binary(tensor: Tensor) -> bool:
    return tensor.parameters.get("binary_data_size") is not None


def _by_feature(inputs: list[Tensor], names: Sequence[str]) -> list[dict]:
    sent = {t.name: t for t in inputs}
    columns = [_values(sent[name]) for name in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _by_tensor(tensor: Tensor, names: Sequence[str]) -> list[dict]:
    values = _values(tensor)
    width = len(names)
    return [
        dict(zip(names, values[i : i + width], strict=True)) for i in range(0, len(values), width)
    ]


def _values(tensor: Tensor) -> list[Any]:
    data = tensor.data
    if not isinstance(data, np.ndarray):
        return data
    values = data.tolist()
    if data.dtype.kind == "f" and np.isnan(data).any():
        return [None if v != v else v for v in values]
    return values


def problem_of(exc: ApiError, inputs: list[Tensor], names: Sequence[str]) -> ProtocolError:
    """A validation error of ``instances``' rows, as the protocol's error naming the input."""
    tensor = inputs[0].name if inputs and inputs[0].name not in set(names) else None
    parts = []
    for item in exc.detail[:1]:
        loc, msg = item["loc"], item["msg"]
        if "never seen in training" in msg:
            msg = "category was never seen in training (VIGIL_STRICT_CATEGORIES is on)"
        if len(loc) >= 3 and isinstance(loc[1], int):
            row, feature = loc[1], loc[2]
            if tensor is not None and feature in names:
                column = list(names).index(feature)
                where = f"input {tensor!r} row {row} column {column} ({feature!r})"
            else:
                where = f"input {feature!r} row {row}"
            parts.append(f"{where}: {msg}")
        else:
            parts.append(msg)
    text = parts[0] if parts else exc.error
    if len(exc.detail) > 1:
        more = len(exc.detail) - 1
        text += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ProtocolError(exc.status, text, exc.reason)


def numeric_instances(
    inputs: list[Tensor], names: Sequence[str], numeric: Sequence[str]
) -> Instances | None:
    """An all-numeric model's rows as ``InstanceValidator.validate`` would make them, straight
    from the tensors' arrays (no dict per row: a 100-row binary request is validated in a few
    vectorised steps). None when anything needs the row-by-row check, which then names the
    problem with the same words as for ``/predict``: another form, a categorical feature, a
    type other than numbers, a non-finite value or one beyond float32."""
    if len(numeric) != len(names):
        return None
    sent = {t.name: t for t in inputs}
    if len(inputs) == 1 and inputs[0].name not in set(names):
        tensor = inputs[0]
        if len(tensor.shape) != 2 or tensor.shape[1] != len(names):
            return None
        flat = _numbers(tensor)
        if flat is None:
            return None
        matrix = flat.reshape(tensor.shape).T
    else:
        if sent.keys() != set(names):
            return None
        columns = [sent[name] for name in names]
        rows = columns[0].rows
        if any(t.rows != rows or len(t.shape) == 2 and t.shape[1] != 1 for t in columns):
            return None
        arrays = [_numbers(t) for t in columns]
        if any(a is None for a in arrays):
            return None
        matrix = np.stack(arrays)
    numbers = np.ascontiguousarray(matrix, dtype=np.float64)
    missing = np.isnan(numbers)
    if not (np.abs(numbers[~missing]) <= _FLOAT32_MAX).all():
        return None
    values = numbers.tolist()
    if missing.any():
        for i in np.flatnonzero(missing.any(axis=1)).tolist():
            values[i] = [None if v != v else v for v in values[i]]
    by_feature = dict(zip(names, values, strict=True))
    return Instances(_Rows(by_feature, numbers.shape[1]), {}, {}, by_feature, numbers)


def _numbers(tensor: Tensor) -> np.ndarray | None:
    """A tensor's elements as float64 (NaN: missing), or None when they are not all numbers.
    JSON's missing value is null, so a NaN parsed from JSON goes to the row-by-row check."""
    data = tensor.data
    if isinstance(data, np.ndarray):
        if data.dtype.kind not in "iuf":
            return None  # booleans: refused by the row-by-row check
        return data.astype(np.float64, copy=False)
    if not set(map(type, data)) <= _NUMBER_TYPES:
        return None
    try:
        array = np.array(data, dtype=np.float64)
    except OverflowError:
        return None
    return None if np.isnan(array).any() else array


class _Rows(Sequence[dict]):
    """The rows of validated columns, as records made only if read (the batcher and the
    predictor only count them: the log and the model take the columns)."""

    def __init__(self, columns: dict[str, list[Any]], n: int):
        self.columns = columns
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return {name: values[i] for name, values in self.columns.items()}
