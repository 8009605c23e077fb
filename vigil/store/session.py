"""The one set of PostgreSQL connection settings: every engine and connection of Vigil (the
inference log, the registry, the monitor's leader election) is opened with ``connect_args``.

Each wait is bounded by about ``timeout`` seconds, on both ends of the connection:

- client side: connecting (``connect_timeout``), and a server that went silent, whether the
  link died while a request was unanswered (``tcp_user_timeout``: sent bytes not acknowledged)
  or while waiting for a reply (TCP keepalives). Without them a blackholed connection waits on
  its socket for the kernel's defaults, about 15 minutes to 2 hours.
- server side: a lock (``lock_timeout``), a statement (``statement_timeout``), a session left
  inside a transaction by a client that vanished (``idle_in_transaction_session_timeout``:
  a trainer killed inside ``promote()`` would otherwise hold the pointer row locked), and the
  server's own keepalives towards a vanished client.
"""

from __future__ import annotations

import math
from typing import Any

# A transaction's client may think between statements (reading a window, hashing a blob);
# only one idle for this many times ``timeout`` is taken as abandoned.
IDLE_IN_TRANSACTION_FACTOR = 6


def connect_args(
    timeout: float,
    *,
    statement_timeout: float | None = None,
    idle_session_timeout: float | None = None,
    application_name: str | None = None,
) -> dict[str, Any]:
    """libpq parameters (for ``psycopg.connect`` or SQLAlchemy's ``connect_args``).

    ``statement_timeout``: defaults to ``timeout``; 0 for none. ``idle_session_timeout``: the
    server ends the session after this long without a statement (the leader's lock session:
    a leader that stops talking loses its lock even when its TCP peer still answers)."""
    seconds = max(1, math.ceil(timeout))
    interval, count = max(1, math.ceil(timeout / 2)), 3
    user_timeout_ms = (seconds + interval * count) * 1000
    ms = int(timeout * 1000)
    statement_ms = ms if statement_timeout is None else int(statement_timeout * 1000)
    gucs = {
        "lock_timeout": ms,
        "statement_timeout": statement_ms,
        "idle_in_transaction_session_timeout": max(1000, ms * IDLE_IN_TRANSACTION_FACTOR),
        "tcp_keepalives_idle": seconds,
        "tcp_keepalives_interval": interval,
        "tcp_keepalives_count": count,
        "tcp_user_timeout": user_timeout_ms,
    }
    if idle_session_timeout is not None:
        gucs["idle_session_timeout"] = int(idle_session_timeout * 1000)
    args: dict[str, Any] = {
        "connect_timeout": seconds,
        "keepalives": 1,
        "keepalives_idle": seconds,
        "keepalives_interval": interval,
        "keepalives_count": count,
        "tcp_user_timeout": user_timeout_ms,
        "options": " ".join(f"-c {name}={value}" for name, value in gucs.items()),
    }
    if application_name:
        args["application_name"] = application_name
    return args


def give_up_seconds(timeout: float) -> float:
    """How long a call on a connection opened with ``connect_args(timeout)`` can wait on a
    blackholed server before it fails: a keepalive idle period and the user timeout on the
    pooled connection, then one attempt to connect anew."""
    seconds = max(1, math.ceil(timeout))
    interval = max(1, math.ceil(timeout / 2))
    return float(seconds + (seconds + interval * 3) + seconds)


def libpq_url(url: str) -> str:
    """``url`` without SQLAlchemy's driver suffix, which means nothing to libpq."""
    scheme, sep, rest = url.partition("://")
    return ("postgresql" if scheme.startswith("postgres") else scheme) + sep + rest
