"""Alembic's entry point, driven by ``vigil.store.migrations`` (no alembic.ini): the caller passes
an open connection, already in a transaction, and the table prefix; the version table is the
prefix's own, so deployments and test runs sharing a database keep separate versions."""

from alembic import context

config = context.config
if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported: run `python -m vigil.db`")

context.configure(
    connection=config.attributes["connection"],
    version_table=config.attributes["table_prefix"] + "alembic_version",
)
with context.begin_transaction():
    context.run_migrations()
