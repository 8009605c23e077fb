"""Request validation derived from the production model's FeatureSchema.

Nothing here knows the default model: a user's model with categorical columns is validated from
its own schema. Every problem is reported with its location (``["instances", 3, "mean radius"]``);
the first one also names the reason counted in ``vigil_input_rejected_total``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from service.errors import ApiError, problem, summary
from vigil.schema import FeatureSchema

_FLOAT_MAX = sys.float_info.max


@dataclass(frozen=True)
class Instances:
    """Valid instances, as sent (``None`` is a missing value), and unseen-category counts."""

    records: list[dict[str, Any]]
    unseen: dict[str, int] = field(default_factory=dict)


@dataclass
class _Problems:
    items: list[tuple[list[Any], str, str]] = field(default_factory=list)

    def add(self, loc: list[Any], msg: str, reason: str) -> None:
        self.items.append((loc, msg, reason))

    def raise_if_any(self, status: int = 400) -> None:
        if not self.items:
            return
        detail = [problem(loc, msg) for loc, msg, _ in self.items]
        raise ApiError(status, summary(detail), detail, reason=self.items[0][2])


class InstanceValidator:
    def __init__(self, schema: FeatureSchema, *, max_rows: int, strict_categories: bool = False):
        self.names = schema.names
        self.expected = frozenset(self.names)
        self.numeric = schema.numeric
        self.categories = {
            f.name: frozenset(f.categories) for f in schema.features if f.kind == "categorical"
        }
        self.max_rows = max_rows
        self.strict = strict_categories

    def validate(self, instances: Any, field_name: str = "instances") -> Instances:
        """The checked instances, or an ``ApiError`` (400, or 413 above ``max_rows``)."""
        if not isinstance(instances, list):
            raise ApiError(
                400,
                f"{field_name}: expected a list of objects, got {_kind(instances)}",
                [problem([field_name], f"expected a list of objects, got {_kind(instances)}")],
                reason="wrong_type",
            )
        check_count(len(instances), self.max_rows, field_name)
        problems = _Problems()
        unseen: dict[str, int] = {}
        for i, row in enumerate(instances):
            if type(row) is not dict:
                problems.add(
                    [field_name, i],
                    f"expected an object of feature values, got {_kind(row)}",
                    "wrong_type",
                )
                continue
            if row.keys() != self.expected:
                self._keys(row, [field_name, i], problems)
            self._numbers(row, [field_name, i], problems)
            self._categories(row, [field_name, i], problems, unseen)
        problems.raise_if_any()
        return Instances(records=instances, unseen=unseen)

    def _keys(self, row: dict, loc: list[Any], problems: _Problems) -> None:
        for name in self.names:
            if name not in row:
                problems.add(
                    [*loc, name], "field required (send null for a missing value)", "missing_field"
                )
        for key in row:
            if key not in self.expected:
                problems.add(
                    [*loc, key], "unknown field: not a feature of the model", "unknown_field"
                )

    def _numbers(self, row: dict, loc: list[Any], problems: _Problems) -> None:
        for name in self.numeric:
            value = row.get(name)
            kind = type(value)
            if kind is float:
                if value - value != 0.0:  # false only for NaN and ±inf
                    problems.add([*loc, name], "value is not a finite number", "non_finite")
            elif kind is int:
                if abs(value) > _FLOAT_MAX:
                    problems.add([*loc, name], "value is not a finite number", "non_finite")
            elif value is not None:
                problems.add([*loc, name], f"expected a number, got {_kind(value)}", "wrong_type")

    def _categories(
        self, row: dict, loc: list[Any], problems: _Problems, unseen: dict[str, int]
    ) -> None:
        for name, known in self.categories.items():
            value = row.get(name)
            if type(value) is str:
                if value in known:
                    continue
                if self.strict:
                    problems.add(
                        [*loc, name],
                        f"category {value[:100]!r} was never seen in training "
                        "(VIGIL_STRICT_CATEGORIES is on)",
                        "unseen_category",
                    )
                else:
                    unseen[name] = unseen.get(name, 0) + 1
            elif value is not None:
                problems.add(
                    [*loc, name],
                    f"expected a string (a category), got {_kind(value)}",
                    "wrong_type",
                )


def feedback_labels(
    labels: Any, classes: tuple[Any, ...], max_rows: int, field_name: str = "labels"
) -> list[tuple[str, Any]]:
    """``(prediction_id, label)`` pairs; a label must be one of the model's classes, exactly
    (``1`` for an integer class, not ``"1"``, ``1.0`` or ``true``)."""
    if not isinstance(labels, list):
        msg = f"expected a list of objects, got {_kind(labels)}"
        raise ApiError(
            400, f"{field_name}: {msg}", [problem([field_name], msg)], reason="wrong_type"
        )
    check_count(len(labels), max_rows, field_name)
    known = {(type(c), c) for c in classes}
    problems = _Problems()
    out = []
    for i, item in enumerate(labels):
        loc = [field_name, i]
        if type(item) is not dict:
            problems.add(loc, f"expected an object, got {_kind(item)}", "wrong_type")
            continue
        for key in item.keys() - {"prediction_id", "label"}:
            problems.add([*loc, key], "unknown field", "unknown_field")
        pid, label = item.get("prediction_id"), item.get("label")
        if "prediction_id" not in item:
            problems.add([*loc, "prediction_id"], "field required", "missing_field")
        elif type(pid) is not str or not 0 < len(pid) <= 64:
            problems.add([*loc, "prediction_id"], "expected a prediction id string", "wrong_type")
        if "label" not in item:
            problems.add([*loc, "label"], "field required", "missing_field")
        elif type(label) not in (int, str) or (type(label), label) not in known:
            problems.add(
                [*loc, "label"],
                f"{label!r} is not a class of the model (classes: {list(classes)[:20]})",
                "unknown_label",
            )
        out.append((pid, label))
    problems.raise_if_any()
    return out


def check_count(n: int, max_rows: int, field_name: str) -> None:
    if n == 0:
        raise ApiError(
            400,
            f"{field_name}: at least one item is required",
            [problem([field_name], "at least one item is required")],
            reason="empty",
        )
    if n > max_rows:
        msg = f"{n} items; at most {max_rows} per request (VIGIL_MAX_BATCH_ROWS)"
        raise ApiError(
            413, f"{field_name}: {msg}", [problem([field_name], msg)], reason="too_many_rows"
        )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
