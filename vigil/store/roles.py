"""The service's least-privilege PostgreSQL role: what it may do, as GRANT statements.

The service is the internet-facing part: it writes the inference log (requests, feedback
labels, a shadow's predictions) and reads the model registry and the candidate pointer,
nothing more. No DDL (the monitor creates the log's day
partitions, ``python -m vigil.db upgrade`` the tables), no writes to the registry, no deletes.
Run with ``VIGIL_MANAGE_SCHEMA=false`` so that it does not try.

    python -m vigil.db grants vigil_service    # prints the statements for VIGIL_TABLE_PREFIX
"""

from __future__ import annotations

import re

from vigil.store.migrations import version_table
from vigil.store.tables import candidate_tables, registry_tables

_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def service_grants(prefix: str, role: str) -> list[str]:
    """GRANTs giving ``role`` exactly what the service needs on the tables of ``prefix``."""
    if not _ROLE.match(role):
        raise ValueError(f"role {role!r}: use lower-case letters, digits and _")
    if not _ROLE.match(prefix.lower()):
        raise ValueError(f"table prefix {prefix!r} cannot be quoted safely here")
    registry = registry_tables(prefix)
    readable = [t.name for t in (registry.models, registry.artifacts, registry.blobs)]
    readable += [registry.production.name, registry.history.name, version_table(prefix)]
    candidates = candidate_tables(prefix)
    readable.append(candidates.candidate.name)  # which shadow or canary to follow
    grants = [
        # Logging a request; its id comes from the table's sequence.
        f'GRANT SELECT, INSERT ON "{prefix}requests" TO "{role}"',
        f'GRANT USAGE ON SEQUENCE "{prefix}requests_id_seq" TO "{role}"',
        # /feedback: labels are upserted (a repeated id replaces the earlier label).
        f'GRANT SELECT, INSERT, UPDATE ON "{prefix}feedback" TO "{role}"',
        # A shadow's predictions, one row per request, written after the answer.
        f'GRANT INSERT ON "{candidates.shadow.name}" TO "{role}"',
    ]
    grants += [f'GRANT SELECT ON "{name}" TO "{role}"' for name in readable]
    return grants
