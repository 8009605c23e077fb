"""Labels in one normal form: a class read from a CSV, sent as JSON or returned by numpy is the
same Python value everywhere (the schema, the task, the log)."""

from __future__ import annotations

from typing import Any

Label = int | str


def plain_label(value: Any) -> Label:
    """numpy scalars to JSON-able Python values: integral labels stay ints, others are text."""
    if isinstance(value, bool):
        return str(value)
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else str(value)


def label_sort_key(value: Any) -> tuple[int, Any]:
    """Integers first, in order, then text: the order of a model's classes."""
    plain = plain_label(value)
    return (0, plain) if isinstance(plain, int) else (1, str(plain))
