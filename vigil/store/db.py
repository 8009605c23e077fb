"""``python -m vigil.db``: the inference log's and model registry's schema version, migrating it.

The log and the registry share one database and one chain of migrations, so one version.

    python -m vigil.db upgrade         # apply every migration this build has (the usual one)
    python -m vigil.db current         # the database's revision and this build's head
    python -m vigil.db check           # exit 1 unless the schema is this build's
    python -m vigil.db downgrade REV   # back to an older revision
    python -m vigil.db grants ROLE     # the service's least-privilege GRANTs (vigil.store.roles)

It acts on ``VIGIL_DATABASE_URL`` (SQLite under ``VIGIL_HOME`` by default) and the tables of
``VIGIL_TABLE_PREFIX``. A database made by Vigil d8d9393 (no version table) is stamped as
``0001_baseline`` and upgraded from there; registry tables that builds before ``0003_registry``
made outside the migrations are adopted by that revision when they match it.
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0])
_WHAT = "schema of the inference log and model registry"


class _Database:
    """The settings' database and table prefix, with the process's engine for it."""

    def __init__(self):
        from vigil.settings import get_settings
        from vigil.store.engine import engine_for

        settings = get_settings()
        self.table_prefix = settings.table_prefix
        self.engine = engine_for(settings.resolved_database_url, settings.log_timeout_seconds)

    def schema_state(self):
        from vigil.store import migrations

        return migrations.database_state(self.engine, self.table_prefix)

    def close(self) -> None:
        self.engine.dispose()


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Migrate the log's and the registry's tables to REVISION (default: this build's head)."""
    from vigil.store import migrations
    from vigil.store.errors import InferenceLogError

    db = _Database()
    try:
        before = db.schema_state()
        migrations.upgrade(db.engine, db.table_prefix, revision)
        after = db.schema_state()
    except (migrations.SchemaError, InferenceLogError) as exc:
        _fail(str(exc))
    finally:
        db.close()
    was = before.revision or before.state
    typer.echo(f"{_WHAT} ({db.table_prefix}*): {was} -> {after.revision}")


@app.command()
def downgrade(revision: Annotated[str, typer.Argument(help="Target revision, or 'base'")]) -> None:
    """Migrate the tables back to REVISION ('base' drops the log's; the registry's are kept
    below 0003_registry, as the builds before it made them)."""
    from vigil.store import migrations

    db = _Database()
    try:
        migrations.downgrade(db.engine, db.table_prefix, revision)
        typer.echo(f"{_WHAT} ({db.table_prefix}*): now {revision}")
    finally:
        db.close()


@app.command()
def current() -> None:
    """Print the database's revision (or state) and this build's head."""
    db = _Database()
    try:
        found = db.schema_state()
    finally:
        db.close()
    typer.echo(f"database: {found.revision or found.state}\nthis build: {found.head}")


@app.command()
def check() -> None:
    """Exit 0 when the schema is this build's; otherwise say what to run and exit 1."""
    from vigil.store.errors import InferenceLogError

    db = _Database()
    try:
        problem = db.schema_state().problem
    except InferenceLogError as exc:
        _fail(str(exc))
    finally:
        db.close()
    if problem is not None:
        _fail(problem)
    typer.echo(f"{_WHAT} is current")


@app.command()
def grants(role: Annotated[str, typer.Argument(help="The service's PostgreSQL role")]) -> None:
    """Print the GRANT statements that give ROLE what the service needs and nothing more."""
    from vigil.settings import get_settings
    from vigil.store.roles import service_grants

    try:
        statements = service_grants(get_settings().table_prefix, role)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo("\n".join(f"{statement};" for statement in statements))


if __name__ == "__main__":
    app()
