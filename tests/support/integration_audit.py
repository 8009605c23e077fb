"""What a test reaches outside this process: a process it starts (Python's audit events) and a
PostgreSQL connection it opens (``psycopg.connect``, which SQLAlchemy and the monitor's leader
lock call). ``tests/conftest.py`` fails a test that does either without the markers that say
so (``integration``; ``postgres`` too for the database), so ``make test-fast``
(``-m "not integration"``) never waits on a process or a database.
"""

from __future__ import annotations

import functools
import os
import sys

# Audit events of starting a process (multiprocessing and subprocess go through these).
SPAWN_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn", "os.exec", "os.fork"}
)
# One-off look-ups the code under test makes, not processes a test starts or waits on: the
# commit a trained model records (git), the platform's processor (uname, via ``platform``) and
# the physical cores (lscpu, via joblib's ``cpu_count``).
INCIDENTAL = frozenset({"git", "uname", "lscpu"})


def _program(event: str, args: tuple) -> str:
    if event == "os.system":
        return str(args[0]).split()[0] if args and str(args[0]).split() else ""
    if event == "subprocess.Popen":
        executable, argv = args[0], args[1]
        first = executable or (argv if isinstance(argv, (str, bytes)) else argv[0])
        return os.path.basename(os.fsdecode(first).split()[0])
    return os.path.basename(os.fsdecode(args[0])) if args else ""


class Audit:
    """Records what the running test reached; ``tests/conftest.py`` turns it on per test."""

    def __init__(self) -> None:
        self.on = False
        self.seen: list[tuple[tuple[str, ...], str]] = []  # (markers it needs, what)

    def install(self) -> None:
        sys.addaudithook(self._hook)  # cannot be removed: it records only while ``on``
        try:
            import psycopg
        except ImportError:
            return
        psycopg.connect = self._watched(psycopg.connect)

    def _hook(self, event: str, args: tuple) -> None:
        if self.on and event in SPAWN_EVENTS and _program(event, args) not in INCIDENTAL:
            what = args[0] if event == "os.system" else args[:2] if args else ()
            self.seen.append((("integration",), f"{event} {what!r}"[:300]))

    def _watched(self, connect):
        @functools.wraps(connect)
        def watched(*args, **kwargs):
            conn = connect(*args, **kwargs)  # a refused connection reached nothing
            if self.on:
                info = conn.info
                where = f"PostgreSQL connection to {info.host}:{info.port}"
                self.seen.append((("integration", "postgres"), where))
            return conn

        return watched

    def unmarked(self, markers: set[str]) -> list[str]:
        """What was reached since the last call that ``markers`` do not cover."""
        seen, self.seen = self.seen, []
        return [
            f"{what} (needs {', '.join(sorted(set(needs) - markers))})"
            for needs, what in seen
            if not set(needs) <= markers
        ]
