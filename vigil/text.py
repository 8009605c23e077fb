"""Error text: an error in one line, a value named in a message cut short."""

from __future__ import annotations

from typing import Any


def one_line(exc: BaseException | None) -> str:
    """The first line of an error's text, at most 300 characters. For a SQLAlchemy error, its
    driver's own error: SQLAlchemy's text adds the statement and its parameters."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return (text[0] if text else "")[:300]


def shortened(value: Any) -> str:
    """``repr(value)`` cut to 40 characters: a bad value named in a message, never echoed whole."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
