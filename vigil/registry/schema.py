"""The model registry's schema: its errors, and making (or checking) its tables on a database.

The tables (``vigil.store.tables.registry_tables``) are made, and versioned with the log's, by
the migrations (``vigil.store.migrations``, revision ``0003_registry``; ``python -m vigil.db``).
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from vigil.store import migrations
from vigil.store.errors import LogSchemaError
from vigil.store.tables import registry_tables
from vigil.text import one_line


class RegistryError(RuntimeError):
    """The registry's database could not be reached, or its schema created."""


class RegistrySchemaError(RegistryError, LogSchemaError):
    """The database's schema is not this build's; the message names the command to run and
    holds no connection details. The registry and the log share one schema version, so this
    is a ``LogSchemaError`` too: whatever reports the log's (``/readyz``) reports it alike."""


def create_registry_schema(engine: Engine, prefix: str = "vigil_", *, manage: bool = True) -> None:
    """Create the schema on an empty database through the migrations, as the inference log
    does, then check it: ``RegistrySchemaError`` for an older or newer one, which only
    ``python -m vigil.db upgrade`` changes. Processes starting together create it once.
    Without ``manage`` (a role without DDL rights) it is only checked."""
    try:
        if manage:
            migrations.upgrade(engine, prefix, only_if_empty=True)
        with engine.connect() as conn:
            problem = migrations.state(conn, prefix).problem
    except migrations.SchemaError as exc:
        raise RegistrySchemaError(str(exc)) from None
    except SQLAlchemyError as exc:
        raise RegistryError(f"cannot create the model registry schema: {one_line(exc)}") from exc
    if problem is not None:
        raise RegistrySchemaError(problem)


def drop_registry_schema(engine: Engine, prefix: str = "vigil_") -> None:
    """Drop the registry's tables (tests; the version table still says they exist)."""
    registry_tables(prefix).metadata.drop_all(engine)
