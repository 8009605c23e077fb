"""Error text for one log line or one message field."""

from __future__ import annotations


def one_line(exc: BaseException | None) -> str:
    """The first line of an error's text, at most 300 characters. For a SQLAlchemy error, its
    driver's own error: SQLAlchemy's text adds the statement and its parameters."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return (text[0] if text else "")[:300]

