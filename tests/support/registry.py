"""Damage a saved model in tests: its recorded artifact no longer matches its bytes."""

from __future__ import annotations

import secrets

from vigil.registry.store import PIPELINE, Registry


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


def publish(source_settings, settings) -> str:
    """Copy the production model of ``source_settings``' registry, tag and artifacts as they
    are, into the (fresh) registry of ``settings`` and make it production there; its tag."""
    source, dest = Registry(source_settings), Registry(settings)
    tag = source.production_tag()
    dest.create_schema()
    t = source.tables
    with source.engine.connect() as conn:
        models = [r._asdict() for r in conn.execute(t.models.select().where(t.models.c.tag == tag))]
        files = [
            r._asdict() for r in conn.execute(t.artifacts.select().where(t.artifacts.c.tag == tag))
        ]
        blobs = [
            r._asdict()
            for r in conn.execute(
                t.blobs.select().where(t.blobs.c.sha256.in_([f["sha256"] for f in files]))
            )
        ]
    t = dest.tables  # the same tables under the destination's prefix
    with dest.engine.begin() as conn:
        conn.execute(t.blobs.insert(), blobs)
        conn.execute(t.models.insert(), [{k: v for k, v in m.items() if k != "id"} for m in models])
        conn.execute(t.artifacts.insert(), files)
    dest.promote(tag)
    return tag
