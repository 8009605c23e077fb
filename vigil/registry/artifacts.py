"""Content-addressed artifacts: bytes stored in the registry's database under their sha256,
cached on local disk by hash, and checked against that hash every time they are read.

A cached file that does not match (a torn write, a disk error, a hand edit) is dropped and
fetched again; bytes from the database that do not match are refused
(``ArtifactIntegrityError``): a model whose artifacts are not what was saved is never loaded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from vigil.store.tables import RegistryTables

_HEX = frozenset("0123456789abcdef")


class ArtifactIntegrityError(RuntimeError):
    """An artifact's bytes do not match the sha256 recorded when it was saved."""


class ArtifactMissing(LookupError):
    """No bytes for a recorded sha256 (a blob deleted by hand)."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _checked(digest: str) -> str:
    # The digest names a file in the cache: it must be exactly 64 hex digits.
    if len(digest) != 64 or not set(digest) <= _HEX:
        raise ArtifactIntegrityError(f"not a sha256 digest: {digest[:80]!r}")
    return digest


class ArtifactStore:
    def __init__(self, engine: Engine, tables: RegistryTables, cache_dir: Path):
        self.engine = engine
        self.blobs = tables.blobs
        self.cache_dir = Path(cache_dir)

    def put(self, conn: Connection, data: bytes) -> str:
        """Store ``data`` (inside the caller's transaction) and cache it; returns its sha256."""
        from sqlalchemy.dialects import postgresql, sqlite

        digest = sha256(data)
        insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
        conn.execute(
            insert(self.blobs)
            .values(sha256=digest, size=len(data), data=data)
            .on_conflict_do_nothing(index_elements=["sha256"])
        )
        self._cache(digest, data)
        return digest

    def read(self, digest: str, what: str = "artifact") -> bytes:
        """The bytes whose sha256 is ``digest``, verified: from the cache, else the database."""
        path = self._path(_checked(digest))
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = None
        if data is not None and sha256(data) == digest:
            return data
        data = self._fetch(digest, what)
        self._cache(digest, data)
        return data

    def path(self, digest: str, what: str = "artifact") -> Path:
        """A local file holding the verified bytes of ``digest``."""
        path = self._path(_checked(digest))
        try:
            with open(path, "rb") as fh:
                if _file_sha256(fh) == digest:
                    return path
        except FileNotFoundError:
            pass
        self._cache(digest, self._fetch(digest, what))
        return path

    def _fetch(self, digest: str, what: str) -> bytes:
        b = self.blobs
        with self.engine.connect() as conn:
            data = conn.scalar(sa.select(b.c.data).where(b.c.sha256 == digest))
        if data is None:
            raise ArtifactMissing(f"{what}: no stored bytes for sha256 {digest}")
        data = bytes(data)
        actual = sha256(data)
        if actual != digest:
            raise ArtifactIntegrityError(
                f"{what} does not match the sha256 recorded at save "
                f"(recorded {digest}, stored bytes hash to {actual}): refusing it"
            )
        return data

    def prune_cache(self, keep: Iterable[str], *, tmp_older_than: float = 3600.0) -> int:
        """Delete cached artifacts not in ``keep`` (digests), and temporary files a crash left
        behind (older than ``tmp_older_than`` seconds: younger ones may be a write under way
        in another worker); returns the files removed. Only files named as this store names
        them are touched. A removed artifact still in use is fetched again on its next read."""
        keep = set(keep)
        now, removed = time.time(), 0
        if not self.cache_dir.is_dir():
            return 0
        for path in self.cache_dir.glob("??/*"):
            name = path.name
            if name.startswith(".tmp."):
                stale = _age(path, now) > tmp_older_than
            else:
                stale = len(name) == 64 and set(name) <= _HEX and name not in keep
            if stale:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _path(self, digest: str) -> Path:
        return self.cache_dir / digest[:2] / digest

    def _cache(self, digest: str, data: bytes) -> None:
        """Write through a temporary file and ``os.replace``: a reader sees all or nothing."""
        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:  # removed meanwhile
        return 0.0


def _file_sha256(fh) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()
