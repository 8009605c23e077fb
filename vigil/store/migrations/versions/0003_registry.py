"""The model registry's tables (``vigil.store.tables``): models, their artifacts by sha256,
the artifacts' bytes, the production pointer with its one row, and the pointer's history.

Builds before this revision made these tables with ``create_all`` at run time, outside the
version table. Upgrading such a database adopts each table, rows and all, when it matches the
definition below (columns, their types and nullability, primary and unique keys); a table that
does not match stops the upgrade, which then changes nothing, and the error names what differs.

Downgrading keeps the tables and their rows: the build before this revision uses them as they
are (its ``create_all`` finds them), so rolling a deployment back keeps its models and its
production pointer. Upgrading again adopts them.

The definitions are frozen here; ``vigil.store.tables`` holds the ones queried, and the
tests check that the two agree.

Revision ID: 0003_registry
Revises: 0002_partitioned_requests
"""

import sqlalchemy as sa
from alembic import op

from vigil.store.migrations import SchemaError, table_prefix

revision = "0003_registry"
down_revision = "0002_partitioned_requests"
branch_labels = None
depends_on = None

# SQLite only autoincrements a plain INTEGER primary key.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
POINTER_ID = 1


def _tables(p: str) -> list[sa.Table]:
    md = sa.MetaData()
    return [
        sa.Table(
            f"{p}models",
            md,
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("tag", sa.String(200), nullable=False, unique=True),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("contract", sa.Text, nullable=False),
            sa.Column("metrics", sa.Text, nullable=False),
            sa.Column("dataset_sha256", sa.String(64)),
            sa.Column("git_commit", sa.String(64)),
            sa.Column("parent", sa.String(200)),
        ),
        sa.Table(
            f"{p}model_artifacts",
            md,
            sa.Column("tag", sa.String(200), primary_key=True),
            sa.Column("name", sa.String(200), primary_key=True),
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.Column("size", sa.BigInteger, nullable=False),
        ),
        sa.Table(
            f"{p}blobs",
            md,
            sa.Column("sha256", sa.String(64), primary_key=True),
            sa.Column("size", sa.BigInteger, nullable=False),
            sa.Column("data", sa.LargeBinary, nullable=False),
        ),
        sa.Table(
            f"{p}production",
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("tag", sa.String(200)),
            sa.Column("previous", sa.Text, nullable=False),
            sa.Column("revision", sa.BigInteger, nullable=False),
            sa.Column("changed_at", sa.Float),
        ),
        sa.Table(
            f"{p}production_history",
            md,
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("revision", sa.BigInteger, nullable=False, unique=True),
            sa.Column("action", sa.String(16), nullable=False),
            sa.Column("tag", sa.String(200), nullable=False),
            sa.Column("previous", sa.String(200)),
            sa.Column("at", sa.Float, nullable=False),
            sa.Column("by", sa.String(200), nullable=False),
        ),
    ]


def differences(inspector, table: sa.Table) -> list[str]:
    """How the database's table of this name differs from ``table`` (empty: it matches)."""
    found = {c["name"]: c for c in inspector.get_columns(table.name)}
    wanted = {c.name: c for c in table.columns}
    out = [f"no column {name}" for name in wanted if name not in found]
    out += [f"an extra column {name}" for name in found if name not in wanted]
    for name in wanted.keys() & found.keys():
        want, got = wanted[name], found[name]
        if _kind(want.type) != _kind(got["type"]):
            out.append(f"column {name} is {got['type']}, not {want.type}")
        if bool(got["nullable"]) != bool(want.nullable):
            out.append(f"column {name} is {'' if got['nullable'] else 'NOT '}NULL")
    pk = set(inspector.get_pk_constraint(table.name)["constrained_columns"])
    if pk != {c.name for c in table.primary_key.columns}:
        out.append(f"its primary key is ({', '.join(sorted(pk))})")
    unique = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)}
    unique |= {
        tuple(i["column_names"]) for i in inspector.get_indexes(table.name) if i.get("unique")
    }
    for column in table.columns:
        if column.unique and (column.name,) not in unique:
            out.append(f"column {column.name} is not unique")
    return out


def _kind(type_) -> tuple:
    """What must agree between a declared and a reflected type: the Python values it holds
    (BIGINT and INTEGER both hold ints: SQLite's id is INTEGER) and a string's length."""
    try:
        python = type_.python_type
    except NotImplementedError:
        python = type(type_).__name__
    return python, getattr(type_, "length", None)


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    existing = set(inspector.get_table_names())
    tables = _tables(table_prefix())
    problems = [
        f"{t.name}: {'; '.join(diff)}"
        for t in tables
        if t.name in existing and (diff := differences(inspector, t))
    ]
    if problems:
        raise SchemaError(
            "the model registry's existing tables differ from this build's, so they cannot "
            f"be adopted: {' | '.join(problems)}"
        )
    for table in tables:
        if table.name not in existing:
            table.create(bind)
    production = tables[3]
    pointer = sa.select(production.c.id).where(production.c.id == POINTER_ID)
    if bind.scalar(pointer) is None:
        bind.execute(production.insert().values(id=POINTER_ID, tag=None, previous="[]", revision=0))


def downgrade() -> None:
    """The tables stay, as the previous build expects them (see the module's docstring)."""
