"""Request ids and the prediction ids derived from them.

A request id is a UUIDv7 written as 32 hex digits: Unix milliseconds first, then random bits.
Time-ordered on purpose: the inference log's unique index on it then grows at one end, as with
an autoincrement key; random ids (uuid4) scatter every write over the whole index.

A prediction id is its request's id followed by the instance's position in the request as
four hex digits. ``/feedback`` finds the logged request by its indexed id and the instance by
position, so the log needs no index entry per instance.
"""

from __future__ import annotations

import os
import re
import threading
import time

from vigil.limits import MAX_REQUEST_ROWS, OFFSET_DIGITS

REQUEST_ID_LENGTH = 32
PREDICTION_ID_LENGTH = REQUEST_ID_LENGTH + OFFSET_DIGITS

_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
_PREDICTION_ID = re.compile(r"[0-9a-f]{36}")
_RAND_B = (1 << 62) - 1
# The last id made in this process: ids of the same millisecond follow it (RFC 9562's
# monotonic random), so one process's ids sort in the order they were made.
_last = 0
_lock = threading.Lock()
# Suffixes of the common request sizes, formatted once: a 100-row request costs 100 string
# concatenations instead of 100 format calls.
_SUFFIXES = [f"{i:0{OFFSET_DIGITS}x}" for i in range(4096)]


def new_request_id(at: float | None = None) -> str:
    """A UUIDv7 as 32 hex digits, for the time ``at`` (Unix seconds; now by default)."""
    return new_request_ids(1, at)[0]


def new_request_ids(n: int, at: float | None = None) -> list[str]:
    """``n`` UUIDv7s for the same millisecond (``at``, or now), ascending."""
    global _last
    ms = time.time_ns() // 1_000_000 if at is None else int(at * 1000)
    raw = os.urandom(10 * n)
    ids = []
    with _lock:
        last = _last
        for i in range(n):
            rand = int.from_bytes(raw[10 * i : 10 * i + 10], "big")  # 80 bits, 74 used
            value = (ms << 80) | (0x7 << 76) | ((rand >> 68) << 64) | (0b10 << 62)
            value |= rand & _RAND_B
            if value >> 80 == last >> 80 and value <= last:
                value = last + 1  # same millisecond: after the previous id
            ids.append(f"{value:032x}")
            last = value
        _last = last
    return ids


def is_request_id(value: str) -> bool:
    return _REQUEST_ID.fullmatch(value) is not None


def prediction_ids(request_id: str, n: int) -> list[str]:
    """The ids of a request's ``n`` instances, in order."""
    if n > MAX_REQUEST_ROWS:
        raise ValueError(f"a request holds at most {MAX_REQUEST_ROWS} instances, not {n}")
    if n <= len(_SUFFIXES):
        return [request_id + suffix for suffix in _SUFFIXES[:n]]
    return [f"{request_id}{i:0{OFFSET_DIGITS}x}" for i in range(n)]


def prediction_id(request_id: str, offset: int) -> str:
    return f"{request_id}{offset:0{OFFSET_DIGITS}x}"


def split_prediction_id(prediction_id: str) -> tuple[str, int] | None:
    """``(request_id, position)``, or None for a string that is not a prediction id."""
    if not isinstance(prediction_id, str) or not _PREDICTION_ID.fullmatch(prediction_id):
        return None
    return prediction_id[:REQUEST_ID_LENGTH], int(prediction_id[REQUEST_ID_LENGTH:], 16)
