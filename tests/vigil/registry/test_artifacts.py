"""The local artifact cache: bounded to what is referenced, and rid of stale temporary files."""

from __future__ import annotations

import os
import time

import sqlalchemy as sa

from vigil.registry.artifacts import ArtifactStore, sha256
from vigil.store.tables import registry_tables


def test_pruning_keeps_referenced_files_and_fresh_temporaries(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    tables = registry_tables("t_")
    tables.metadata.create_all(engine)
    store = ArtifactStore(engine, tables, tmp_path / "cache")
    with engine.begin() as conn:
        kept, dropped = store.put(conn, b"kept"), store.put(conn, b"dropped")
    shard = store.cache_dir / kept[:2]
    stale, fresh = shard / ".tmp.abc", shard / ".tmp.def"
    stale.write_bytes(b"half a write"), fresh.write_bytes(b"a write under way")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    foreign = shard / "notes.txt"  # not a name the store gives: never touched
    foreign.write_text("x")

    assert store.prune_cache({kept}) == 2
    assert not (store.cache_dir / dropped[:2] / dropped).exists() and not stale.exists()
    assert fresh.exists() and foreign.exists()
    assert store.read(kept) == b"kept"
    assert store.read(dropped) == b"dropped" and sha256(b"dropped") == dropped  # re-fetched
