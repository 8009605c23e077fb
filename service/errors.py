"""Error bodies in the contract's shape: ``{"error": "<one line>", "detail": [{"loc", "msg"}]}``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.responses import JSONResponse

MAX_DETAIL = 50  # a 1,000-row request full of mistakes still gets a small answer


class ApiError(Exception):
    """A request we answer with a JSON error; ``reason`` feeds vigil_input_rejected_total."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: Sequence[dict[str, Any]] = (),
        *,
        reason: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(error)
        self.status = status
        self.error = collapsed(error)
        self.detail = list(detail)[:MAX_DETAIL]
        self.reason = reason
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


RETRY_AFTER_SECONDS = 1


def overloaded(msg: str) -> ApiError:
    """The answer to load: 503 with Retry-After (never another 5xx)."""
    return ApiError(503, msg, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def problem(loc: Sequence[str | int], msg: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg}


def summary(detail: Sequence[dict[str, Any]]) -> str:
    """``instances[3].mean radius: field required (and 2 more problems)``."""
    first = detail[0]
    where = _dotted(first["loc"])
    text = f"{where}: {first['msg']}" if where else first["msg"]
    if len(detail) > 1:
        more = len(detail) - 1
        text += f" (and {more} more problem{'s' if more > 1 else ''})"
    return text


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def collapsed(text: str) -> str:
    """``text`` on one line, its runs of whitespace one space, at most 500 characters."""
    return " ".join(str(text).split())[:500]
