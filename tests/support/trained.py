"""Model homes trained once per test run and shared by the xdist workers.

Training (ONNX export and its agreement check included) is the costliest set-up of the suite,
and every worker would otherwise train the same fixtures. The first worker to ask trains under
a file lock, in a directory of the run's shared temporary root named by a digest of the code a
trained home depends on and of the build's arguments; the others wait on the lock and copy.
Each worker gets a copy of its own, so no two processes write one home's database.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[2]
# The code a trained home depends on: training, the registry and its contract, ONNX export.
SOURCES = ("training", "vigil", "tests/support/trained.py")
LOCK_TIMEOUT = 900.0  # training under a loaded 2-core machine; a stuck lock fails, not hangs


def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary root every worker of this run shares (the worker's own under xdist is
    ``popen-gwN`` inside it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def source_digest() -> str:
    digest = hashlib.sha256()
    for source in SOURCES:
        path = ROOT / source
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(ROOT).as_posix().encode() + b"\0")
            digest.update(file.read_bytes())
    return digest.hexdigest()


def _checkpoint(home: Path) -> None:
    """Fold each SQLite write-ahead log into its database, so a copy taken while the builder
    still holds a connection is the whole database."""
    for database in home.rglob("*.sqlite3"):
        with contextlib.closing(sqlite3.connect(database)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class TrainedHomes:
    """``get(name, build, **args)``: a worker-private copy of the home ``build(home, **args)``
    fills (in ``into`` if given), built once per run for every worker."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory):
        self.factory = tmp_path_factory
        self.cache = run_root(tmp_path_factory) / "trained-homes"
        self.sources = source_digest()

    def get(
        self, name: str, build: Callable[..., None], into: Path | None = None, **args: object
    ) -> Path:
        key = hashlib.sha256(
            f"{self.sources}|{name}|{sorted(args.items())!r}".encode()
        ).hexdigest()[:16]
        built = self.cache / f"{name}-{key}"
        self.cache.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{built}.lock", timeout=LOCK_TIMEOUT):
            if not built.is_dir():
                # Built aside and renamed: a worker that dies mid-build leaves no half home.
                partial = built.with_name(f"{built.name}.partial")
                shutil.rmtree(partial, ignore_errors=True)
                partial.mkdir()
                build(partial, **args)
                _checkpoint(partial)
                partial.rename(built)
        mine = into or self.factory.mktemp(name)
        shutil.copytree(built, mine, dirs_exist_ok=True)
        return mine
