"""Damage a saved model in tests: its recorded artifact no longer matches its bytes."""

from __future__ import annotations

import secrets

from vigil.registry import PIPELINE, Registry


def corrupt_artifact(settings, tag: str, name: str = PIPELINE, data: bytes = b"not a pickle"):
    """Point ``tag``'s artifact ``name`` at bytes that do not hash to the digest it records
    (artifacts are shared by content, so the shared blob itself is left alone)."""
    registry = Registry(settings)
    t = registry.tables
    digest = secrets.token_hex(32)
    with registry.engine.begin() as conn:
        conn.execute(t.blobs.insert().values(sha256=digest, size=len(data), data=data))
        conn.execute(
            t.artifacts.update()
            .where(t.artifacts.c.tag == tag, t.artifacts.c.name == name)
            .values(sha256=digest)
        )
    return digest
