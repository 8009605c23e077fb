"""Which monitor acts: a PostgreSQL advisory lock elects one leader among monitors on one log.

The leader holds a session-level ``pg_try_advisory_lock`` on a connection of its own. The
lock lives exactly as long as that session: a leader killed with -9 loses it as soon as the
server sees the socket close, a leader whose connection breaks stops leading at its next poll
(it cannot know whether the server still holds the lock for it), and the server drops a
vanished or silent leader's session (TCP keepalives, ``idle_session_timeout``; every
connection setting is ``vigil.store.session``'s). Standbys retry every ``RETRY_SECONDS``. The
key is derived from the table prefix, so deployments sharing a database elect their own
leaders. On SQLite there is one monitor per log: it always leads.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable

from vigil.store import session as pg_session

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0  # a standby's attempts; a leader's death is noticed within this
CHECK_SECONDS = 2.0  # a leader's connection check
# Every wait of the election's connection (vigil.store.session): a leader whose server went
# silent notices within CHECK_SECONDS plus about 2.5 times this.
CONNECT_TIMEOUT = 2
# The server ends a session silent for this long; every session here speaks at least every
# RETRY_SECONDS, so only a lost one is ended, freeing its lock for a standby.
IDLE_SESSION_SECONDS = 2 * RETRY_SECONDS


def lock_key(table_prefix: str) -> int:
    """A signed 64-bit advisory-lock key for the deployment using ``table_prefix``."""
    digest = hashlib.sha256(f"vigil-monitor-leader:{table_prefix}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AlwaysLeader:
    """The single monitor of an SQLite log."""

    since = None

    def __init__(self) -> None:
        self.since = time.time()

    @property
    def is_leader(self) -> bool:
        return True

    def start(self, on_change: Callable[[bool], None]) -> None:
        on_change(True)

    def confirm(self) -> bool:
        return True

    def stop(self) -> None:
        pass


class AdvisoryLockLeader:
    """Leadership through ``pg_try_advisory_lock(key)`` on a dedicated connection, polled by
    a thread of its own so a long check never delays noticing a lost connection."""

    def __init__(self, url: str, key: int):
        self.url = pg_session.libpq_url(url)
        self.key = key
        self.since: float | None = None
        self._conn = None
        self._leading = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_change: Callable[[bool], None] = lambda _leading: None

    @property
    def is_leader(self) -> bool:
        return self._leading

    def start(self, on_change: Callable[[bool], None]) -> None:
        self._on_change = on_change
        on_change(False)
        self.poll()
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=CONNECT_TIMEOUT + 2)
        self._set(False)
        self._close()  # ends the session: the lock is free for a standby at once

    def _run(self) -> None:
        while not self._stop.wait(CHECK_SECONDS if self._leading else RETRY_SECONDS):
            self.poll()

    def poll(self) -> bool:
        """One attempt (standby) or connection check (leader); returns whether it leads."""
        try:
            if self._conn is None:
                self._set(False)  # a new session holds no lock until it takes it
                self._connect()
            if self._leading:
                self._conn.execute("SELECT 1")
            else:
                got = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                if got.fetchone()[0]:
                    self._set(True)
        except Exception as exc:  # the connection is gone: so is the lock, as far as we know
            if self._leading:
                log.warning("leader election: connection lost, no longer leader: %s", exc)
            else:
                log.debug("leader election: cannot reach the database: %s", exc)
            self._set(False)
            self._close()
        return self._leading

    def confirm(self) -> bool:
        """Whether this monitor still leads, asked of the server on the lock's own session: the
        fence before exporting, pruning or rendering. ``is_leader`` is only as fresh as the
        last poll; a session killed since has lost its lock, and a standby may hold it now."""
        if not self._leading:
            return False
        try:
            held = bool(self._conn.execute(_HELD, _lock_ids(self.key)).fetchone()[0])
        except Exception as exc:  # a broken or closed session holds nothing
            log.warning("leader election: cannot confirm the lock: %s", exc)
            held = False
        if not held:
            log.warning("leader election: the lock is gone; no longer leader")
            self._set(False)
            self._close()
        return held

    def _connect(self) -> None:
        import psycopg

        self._conn = psycopg.connect(
            self.url,
            autocommit=True,
            **pg_session.connect_args(
                CONNECT_TIMEOUT,
                # A leader that stops talking (partitioned, frozen) loses its session, and so
                # its lock, even while something still answers TCP for it.
                idle_session_timeout=IDLE_SESSION_SECONDS,
                application_name="vigil-monitor-leader",
            ),
        )

    def _set(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        self.since = time.time() if leading else None
        log.info("leader election: %s", "this monitor leads" if leading else "standby")
        self._on_change(leading)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken
                pass


# A session's bigint advisory lock, as pg_locks shows it: the key's high and low 32 bits.
_HELD = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND classid = %s::bigint::oid AND objid = %s::bigint::oid"
    " AND objsubid = 1)"
)


def _lock_ids(key: int) -> tuple[int, int]:
    unsigned = key % 2**64
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def leadership(settings) -> AlwaysLeader | AdvisoryLockLeader:
    url = settings.resolved_database_url
    if url.startswith("postgres"):
        return AdvisoryLockLeader(url, lock_key(settings.table_prefix))
    return AlwaysLeader()
