"""Request validation derived from the production model's FeatureSchema.

Nothing here knows the default model: a user's model with categorical columns is validated from
its own schema. Every problem is reported with its location (``["instances", 3, "mean radius"]``);
the first one also names the reason counted in ``vigil_input_rejected_total``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import countOf, itemgetter
from typing import Any

import numpy as np

from service.errors import ApiError, problem, summary
from vigil.schema import FeatureSchema
from vigil.tasks import BadLabel, Task

# The served model may run on float32 (ONNX inputs, scikit-learn's tree thresholds): a number
# beyond float32's range would become infinite there.
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOAT_MAX = sys.float_info.max
OTHER_CATEGORY = "__other__"

# Body limit derived from the schema: the most bytes one instance can take when every value is
# at its longest, plus room for whitespace; never below the floor.
BODY_FLOOR_BYTES = 64 * 1024
_NUMBER_BYTES = 48  # -1.2345678901234567e-308, or float32's max written as a 39-digit integer
_ESCAPED_CHAR_BYTES = 6  # \uXXXX: the longest way to write one character of the BMP
_SPACING_BYTES = 8  # '": ' , ', ' and pretty-printing per feature


@dataclass(frozen=True)
class InputLimits:
    """Per-value bounds (VIGIL_MAX_CATEGORY_CHARS, VIGIL_MAX_UNSEEN_CATEGORIES per
    ``window_rows`` rows, VIGIL_DRIFT_WINDOW_ROWS)."""

    max_category_chars: int = 200
    max_unseen: int = 50
    window_rows: int = 1000

    @classmethod
    def from_settings(cls, settings) -> InputLimits:
        return cls(
            settings.max_category_chars, settings.max_unseen_categories, settings.drift_window_rows
        )


def body_limit(schema: FeatureSchema, max_rows: int, max_category_chars: int) -> int:
    """The default VIGIL_MAX_BODY_BYTES: ``max_rows`` instances of ``schema`` at their longest."""
    per_instance = 2
    for feature in schema.features:
        name = len(json.dumps(feature.name))
        if feature.kind == "categorical":
            value = 2 + _ESCAPED_CHAR_BYTES * max_category_chars
        else:
            value = _NUMBER_BYTES
        per_instance += name + value + _SPACING_BYTES
    return max(BODY_FLOOR_BYTES, 64 + max_rows * (per_instance + 2))


@dataclass(frozen=True)
class Instances:
    """Valid instances, as sent (``None`` is a missing value), and unseen-category counts.

    ``columns`` are the same values by feature (``vigil.schema.record_columns``), ``numbers``
    the numeric features' as one float64 array (a row per feature in ``schema.numeric`` order,
    NaN for missing): made once here, for the model's input and the inference log.
    """

    records: list[dict[str, Any]]
    unseen: dict[str, int] = field(default_factory=dict)
    folded: dict[str, int] = field(default_factory=dict)  # feature -> logged as OTHER_CATEGORY
    columns: dict[str, list[Any]] | None = None
    numbers: np.ndarray | None = None


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
    def __init__(
        self,
        schema: FeatureSchema,
        *,
        max_rows: int,
        strict_categories: bool = False,
        limits: InputLimits | None = None,
    ):
        self.limits = limits or InputLimits()
        self.body_limit = body_limit(schema, max_rows, self.limits.max_category_chars)
        self.names = schema.names
        self.expected = frozenset(self.names)
        self.numeric = schema.numeric
        self.categories = {
            f.name: frozenset(f.categories) for f in schema.features if f.kind == "categorical"
        }
        self._allowed = {name: known | {None} for name, known in self.categories.items()}
        self._values = itemgetter(*self.names)
        self.max_rows = max_rows
        self.strict = strict_categories
        # Distinct unseen values admitted per feature in this window (one worker's view):
        # bounds what reaches the log, the reports and a retrained model's schema.
        self._seen_unseen: dict[str, set[str]] = {name: set() for name in self.categories}
        self._window_left = self.limits.window_rows

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
        plain = self._plain(instances)
        if plain is not None:
            columns, numbers, unseen = plain
        else:
            unseen = self._check_rows(instances, field_name)
            columns, numbers = self._split(instances)
        folded: dict[str, int] = {}
        if unseen and not self.strict:
            instances = self._fold_unseen(instances, columns, unseen, folded)
        self._window_left -= len(instances)
        if self._window_left <= 0:
            self._window_left = self.limits.window_rows
            for values in self._seen_unseen.values():
                values.clear()
        return Instances(instances, unseen, folded, columns, numbers)

    def _split(self, instances: list[dict]) -> tuple[dict[str, list[Any]], np.ndarray]:
        """Instances that each have exactly the schema's features, by feature; and the numeric
        ones as float64 (``None`` becomes NaN; an integer beyond float64 raises
        OverflowError)."""
        if len(self.names) == 1:
            columns = {self.names[0]: [row[self.names[0]] for row in instances]}
        else:
            rows = map(self._values, instances)  # in C, as vigil.schema.record_columns does
            columns = dict(zip(self.names, map(list, zip(*rows, strict=True)), strict=True))
        numeric = [columns[name] for name in self.numeric]
        try:  # twice as fast as np.array on the lists, but it refuses None
            numbers = np.fromiter(
                chain.from_iterable(numeric), np.float64, len(numeric) * len(instances)
            )
        except TypeError:
            numbers = np.array(numeric, dtype=np.float64)  # None becomes NaN
        return columns, numbers.reshape(len(numeric), len(instances))

    def _plain(self, instances: list) -> tuple[dict[str, list[Any]], np.ndarray, dict] | None:
        """``_split`` and the unseen-category counts when every instance is valid, checked a
        feature at a time (the row-by-row check costs several times more); None when some
        value has a problem, which ``_check_rows`` then finds and names."""
        if set(map(type, instances)) != {dict} or set(map(len, instances)) != {len(self.names)}:
            return None
        try:
            columns, numbers = self._split(instances)
        except (KeyError, OverflowError, TypeError, ValueError):
            return None
        numeric = [columns[name] for name in self.numeric]
        if not set(map(type, chain.from_iterable(numeric))) <= _NUMBER_TYPES:
            return None  # booleans, strings, lists, objects
        # Missing values are NaN here; so are NaN, ±inf and numbers beyond float32 once negated.
        beyond = np.count_nonzero(~(np.abs(numbers) <= _FLOAT32_MAX))
        if beyond and beyond != sum(map(countOf, numeric, repeat(None))):
            return None
        unseen: dict[str, int] = {}
        for name, allowed in self._allowed.items():
            values = columns[name]
            try:
                new = set(values) - allowed
            except TypeError:
                return None  # a list or an object
            if not new:
                continue
            if self.strict or not all(
                type(v) is str and len(v) <= self.limits.max_category_chars for v in new
            ):
                return None
            unseen[name] = len(values) - sum(map(allowed.__contains__, values))
        return columns, numbers, unseen

    def _check_rows(self, instances: list, field_name: str) -> dict[str, int]:
        """Every problem of every instance, raised as one ``ApiError``; else the unseen
        categories' counts."""
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
        return unseen

    def _fold_unseen(
        self,
        instances: list[dict],
        columns: dict[str, list[Any]],
        unseen: dict[str, int],
        folded: dict[str, int],
    ) -> list[dict]:
        """Past the window's budget of distinct unseen values, a new one is replaced by
        ``OTHER_CATEGORY`` (still an unseen category for the model and the drift check), in
        ``columns`` and in the records (copies: the caller's stay as sent)."""
        out = instances
        for name in unseen:
            known, seen, values = self.categories[name], self._seen_unseen[name], columns[name]
            for i, value in enumerate(values):
                if value is None or value in known or value in seen:
                    continue
                if len(seen) < self.limits.max_unseen:
                    seen.add(value)
                    continue
                if out is instances:
                    out = list(instances)
                out[i] = {**out[i], name: OTHER_CATEGORY}
                values[i] = OTHER_CATEGORY
                folded[name] = folded.get(name, 0) + 1
        return out

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
                elif abs(value) > _FLOAT32_MAX:
                    problems.add([*loc, name], _OUT_OF_RANGE, "out_of_range")
            elif kind is int:
                if abs(value) > _FLOAT_MAX:  # no float at all can hold it
                    problems.add([*loc, name], "value is not a finite number", "non_finite")
                elif abs(value) > _FLOAT32_MAX:
                    problems.add([*loc, name], _OUT_OF_RANGE, "out_of_range")
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
                if len(value) > self.limits.max_category_chars:
                    problems.add(
                        [*loc, name],
                        f"category is {len(value)} characters; at most "
                        f"{self.limits.max_category_chars} (VIGIL_MAX_CATEGORY_CHARS)",
                        "category_too_long",
                    )
                elif self.strict:
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


_NUMBER_TYPES = frozenset({int, float, type(None)})
_OUT_OF_RANGE = f"number out of range: the model takes values within ±{_FLOAT32_MAX:.7g} (float32)"


def feedback_labels(
    labels: Any, task: Task, classes: tuple[Any, ...], max_rows: int, field_name: str = "labels"
) -> list[tuple[str, Any]]:
    """``(prediction_id, label)`` pairs; a label is what the model's task takes
    (``vigil.tasks``): one of a classifier's classes exactly (``1`` for an integer class, not
    ``"1"``, ``1.0`` or ``true``), a finite number for a regressor."""
    if not isinstance(labels, list):
        msg = f"expected a list of objects, got {_kind(labels)}"
        raise ApiError(
            400, f"{field_name}: {msg}", [problem([field_name], msg)], reason="wrong_type"
        )
    check_count(len(labels), max_rows, field_name)
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
        else:
            try:
                label = task.check_label(label, classes)
            except BadLabel as exc:
                problems.add([*loc, "label"], str(exc), "unknown_label")
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
