"""The schema versions of the inference log and the model registry (vigil.store.migrations, python
-m vigil.db) on SQLite and PostgreSQL: a fresh database, one made by Vigil d8d9393 with data in
it, an older, a newer and a pre-per-request one; registry tables made by create_all before
0003_registry, adopted; and a service that finds the wrong version."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_URL, free_port, postgres_log
from tests.support.cli import Ran, run_command
from tests.support.service import launch, wait_alive
from vigil.log.inference_log import InferenceLog, LogRecord, LogSchemaError, _params
from vigil.log.prediction_ids import new_request_id, prediction_id
from vigil.registry.schema import drop_registry_schema
from vigil.registry.store import Registry, RegistrySchemaError
from vigil.settings import get_settings
from vigil.store import migrations
from vigil.store.tables import POINTER_ID, registry_tables

HEAD = "0004_candidates"
BEFORE_REGISTRY = "0002_partitioned_requests"
DAY = 86_400


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty(request, tmp_path):
    """(url, prefix) of a database with none of the prefix's tables; dropped afterwards."""
    if request.param == "sqlite":
        url, prefix = f"sqlite:///{tmp_path / 'log.sqlite3'}", "vigil_"
    else:
        probe = postgres_log()  # skips (or fails under CI) without PostgreSQL
        probe.drop_schema()
        probe.close()
        url, prefix = POSTGRES_URL, f"m{uuid.uuid4().hex[:10]}_"
    yield url, prefix
    log = InferenceLog(url, prefix)
    log.drop_schema()
    log.close()


def d8d9393_tables(prefix: str) -> sa.MetaData:
    """The tables exactly as Vigil d8d9393 declared them (it made them with create_all)."""
    ident = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    md = sa.MetaData()
    sa.Table(
        f"{prefix}requests",
        md,
        sa.Column("id", ident, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(32), nullable=False, unique=True),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("instances", sa.Text, nullable=False),
        sa.Column("predictions", sa.Text, nullable=False),
        sa.Column("probabilities", sa.Text, nullable=False),
        sa.Index(f"{prefix}requests_version_id", "model_version", "id", "created_at", "row_count"),
        sa.Index(f"{prefix}requests_created", "created_at"),
    )
    sa.Table(
        f"{prefix}feedback",
        md,
        sa.Column("prediction_id", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("row_offset", sa.Integer, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Index(f"{prefix}feedback_request", "request_id", "row_offset"),
    )
    return md


def record(n: int, at: float, version: str = "vigil-model:a", first: int = 0) -> LogRecord:
    return LogRecord(
        request_id=new_request_id(at),
        model_version=version,
        created_at=at,
        instances=[{"x": float(first + i), "colour": "red"} for i in range(n)],
        predictions=[(first + i) % 2 for i in range(n)],
        probabilities={"0": [0.25] * n, "1": [0.75] * n},
    )


def db_cli(url: str, prefix: str, *args: str) -> Ran:
    return run_command("vigil.db", *args, database_url=url, table_prefix=prefix)


def all_at_once(start, threads: int = 4) -> list[BaseException]:
    """Run ``start`` in several threads at once; what they raised."""
    errors: list[BaseException] = []

    def run():
        try:
            start()
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    running = [threading.Thread(target=run) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(60)
    return errors


def test_a_fresh_database_is_created_at_head_with_its_own_version_table(empty):
    url, prefix = empty
    log = InferenceLog(url, prefix)
    assert log.schema_state().state == "empty"
    with pytest.raises(LogSchemaError, match="vigil db upgrade"):
        log.check_schema()
    log.create_schema()
    log.check_schema()
    with log.engine.connect() as conn:
        version = conn.execute(sa.text(f"SELECT version_num FROM {prefix}alembic_version"))
        assert version.scalars().all() == [HEAD]
        assert "alembic_version" not in sa.inspect(conn).get_table_names()
    log.close()
    out = db_cli(url, prefix, "current")
    assert out.returncode == 0 and f"database: {HEAD}" in out.stdout, out.stderr
    assert db_cli(url, prefix, "check").returncode == 0


@pytest.mark.integration
def test_the_entry_point_upgrades_a_fresh_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    out = run_command("vigil.db", "upgrade", database_url=url, subprocess_=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(f"-> {HEAD}"), out.stdout


def test_processes_starting_together_create_the_schema_once(empty):
    url, prefix = empty

    def start():
        log = InferenceLog(url, prefix, timeout=10)
        try:
            log.create_schema()
        finally:
            log.close()

    assert all_at_once(start) == []
    assert InferenceLog(url, prefix).schema_state().state == "current"


def test_upgrade_from_the_d8d9393_schema_keeps_its_data(empty):
    url, prefix = empty
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    old = d8d9393_tables(prefix)
    old.create_all(engine)
    now = time.time()
    # Three days of traffic, oldest first, then one label.
    records = [record(10, now - (2 - day) * DAY, first=10 * day) for day in range(3)]
    with engine.begin() as conn:
        conn.execute(old.tables[f"{prefix}requests"].insert(), [_params(r) for r in records])
        conn.execute(
            old.tables[f"{prefix}feedback"].insert(),
            [
                {
                    "prediction_id": prediction_id(records[0].request_id, 3),
                    "request_id": records[0].request_id,
                    "row_offset": 3,
                    "label": "1",
                    "received_at": now,
                }
            ],
        )
    engine.dispose()

    log = InferenceLog(url, prefix)
    assert log.schema_state().state == "unversioned"
    # The service refuses it (create_schema never touches a database that has tables).
    with pytest.raises(LogSchemaError, match=r"unversioned.*run `vigil db upgrade`"):
        log.create_schema()
    out = db_cli(url, prefix, "check")
    assert out.returncode == 1 and "vigil db upgrade" in out.stderr

    out = db_cli(url, prefix, "upgrade")
    assert out.returncode == 0, out.stderr
    assert f"unversioned -> {HEAD}" in out.stdout
    log.check_schema()

    assert log.count() == 30
    window = log.latest("vigil-model:a", 25)
    assert window.frame["x"].tolist() == [float(i) for i in range(5, 30)]
    labeled = log.labeled("vigil-model:a", 10)
    assert labeled["prediction_id"].tolist() == [prediction_id(records[0].request_id, 3)]
    assert log.add_feedback([(prediction_id(records[2].request_id, 9), 0)]) == (1, [])
    log.write([record(5, now + 1, first=30)])
    assert log.latest("vigil-model:a", 6).frame["x"].tolist() == [float(i) for i in range(29, 35)]
    if log.partitioned:
        with log.engine.connect() as conn:
            kind = conn.scalar(
                sa.text("SELECT relkind FROM pg_class WHERE relname = :t"),
                {"t": f"{prefix}requests"},
            )
            assert kind == "p"
            # Every old row is in its day's partition, none in the default one.
            assert conn.scalar(sa.text(f'SELECT count(*) FROM "{prefix}requests_default"')) == 0
    # Upgrading again changes nothing.
    assert db_cli(url, prefix, "upgrade").returncode == 0
    assert log.count() == 35
    log.close()


def test_an_older_revision_is_refused_until_upgraded_and_downgrade_keeps_data(empty):
    url, prefix = empty
    log = InferenceLog(url, prefix)
    log.create_schema()
    log.write([record(4, time.time() - i * DAY, first=4 * i) for i in range(3)])
    assert db_cli(url, prefix, "downgrade", "0001_baseline").returncode == 0
    state = log.schema_state()
    assert (state.state, state.revision) == ("behind", "0001_baseline")
    with pytest.raises(LogSchemaError, match=f"0001_baseline, this build needs {HEAD}.*upgrade"):
        log.create_schema()
    assert log.count() == 12  # the baseline tables hold the same rows
    assert db_cli(url, prefix, "upgrade").returncode == 0
    log.check_schema()
    assert log.count() == 12
    assert len(log.latest("vigil-model:a", 100).frame) == 12
    log.close()


def test_a_newer_revision_is_refused(empty):
    url, prefix = empty
    log = InferenceLog(url, prefix)
    log.create_schema()
    with log.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {prefix}alembic_version SET version_num = '0099_future'"))
    with pytest.raises(LogSchemaError, match="0099_future, which this build does not know"):
        log.create_schema()
    out = db_cli(url, prefix, "upgrade")
    assert out.returncode == 1 and "does not know" in out.stderr
    assert "Traceback" not in out.stderr
    log.close()


def test_a_log_from_before_the_per_request_change_is_refused_not_touched(empty):
    url, prefix = empty
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        # e22e474^: one row per instance in <prefix>predictions, labels keyed by prediction id.
        conn.execute(
            sa.text(
                f"CREATE TABLE {prefix}predictions (id INTEGER PRIMARY KEY, "
                "prediction_id VARCHAR(64) NOT NULL UNIQUE, request_id VARCHAR(64) NOT NULL, "
                "model_version VARCHAR(200) NOT NULL, created_at FLOAT NOT NULL, "
                "inputs TEXT NOT NULL, prediction TEXT NOT NULL, probabilities TEXT NOT NULL)"
            )
        )
        conn.execute(
            sa.text(
                f"CREATE TABLE {prefix}feedback (prediction_id VARCHAR(64) PRIMARY KEY, "
                "label TEXT NOT NULL, received_at FLOAT NOT NULL)"
            )
        )
    engine.dispose()
    log = InferenceLog(url, prefix)
    with pytest.raises(LogSchemaError, match="before the per-request log.*VIGIL_TABLE_PREFIX"):
        log.create_schema()
    out = db_cli(url, prefix, "upgrade")
    assert out.returncode == 1 and "cannot be migrated" in out.stderr
    with log.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert f"{prefix}requests" not in tables and f"{prefix}alembic_version" not in tables
    log.close()


@pytest.mark.integration
def test_a_service_on_an_older_schema_is_alive_not_ready_and_says_what_to_run(trained_home):
    url = f"sqlite:///{trained_home / 'inference.sqlite3'}"
    log = InferenceLog(url)
    log.create_schema()
    migrations.downgrade(log.engine, log.table_prefix, "0001_baseline")
    log.close()
    handle = launch(trained_home, free_port(), {"VIGIL_WORKERS": "1"})
    try:
        wait_alive(handle, 120)
        ready = httpx.get(f"{handle.url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert "vigil db upgrade" in ready.text
        assert "sqlite" not in ready.text and "Traceback" not in ready.text
        assert db_cli(url, "vigil_", "upgrade").returncode == 0
        # The service retries on the readiness probe and becomes ready on its own.
        deadline = time.monotonic() + 60
        while httpx.get(f"{handle.url}/readyz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, handle.log_text()
            time.sleep(0.5)
    finally:
        handle.terminate()


# -- the model registry's tables (0003_registry) -------------------------------------------


@pytest.fixture(scope="module")
def source(trained_home_template):
    """The default model, to save into fresh registries."""
    return Registry(get_settings(home=trained_home_template)).load_production()


def registry_at(url: str, prefix: str, home) -> Registry:
    return Registry(get_settings(home=home, database_url=url, table_prefix=prefix))


def shape(engine, prefix: str) -> dict:
    """The registry's tables as the database reports them, names without the prefix."""
    out = {}
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        for table in registry_tables(prefix).metadata.sorted_tables:
            name = table.name
            out[name.removeprefix(prefix)] = (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)],
                inspector.get_pk_constraint(name)["constrained_columns"],
                sorted(u["column_names"] for u in inspector.get_unique_constraints(name)),
                sorted((i["column_names"], i["unique"]) for i in inspector.get_indexes(name)),
            )
    return out


def previous_build_registry(engine, prefix: str) -> None:
    """The registry's tables as the builds before 0003_registry made them at run time: with
    create_all (vigil.store.tables' tables are theirs: the test below checks that the migrated
    ones equal them) and the pointer's one row."""
    tables = registry_tables(prefix)
    tables.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            tables.production.insert().values(id=POINTER_ID, tag=None, previous="[]", revision=0)
        )


def copy_registry(source: Registry, engine, prefix: str) -> None:
    """Every row of ``source``'s registry into the (existing) registry tables of ``prefix``;
    ids are left to the destination's sequences, in the same order."""
    src, dst = source.tables, registry_tables(prefix)
    with source.engine.connect() as read, engine.begin() as write:
        for name in ("blobs", "models", "artifacts", "production", "history"):
            table = getattr(src, name)
            order = table.c.id if "id" in table.c and name != "production" else None
            rows = [r._asdict() for r in read.execute(table.select().order_by(order))]
            if order is not None:
                rows = [{k: v for k, v in r.items() if k != "id"} for r in rows]
            write.execute(getattr(dst, name).delete())
            if rows:
                write.execute(getattr(dst, name).insert(), rows)


def saved_and_promoted(registry: Registry, source, times: int = 2) -> list[str]:
    tags = []
    for _ in range(times):
        tags.append(registry.save(source.pipeline, source.contract, source.reference))
        registry.promote(tags[-1])
    return tags


def test_a_fresh_registry_is_made_by_the_migrations_as_registry_schema_declares_it(empty, tmp_path):
    url, prefix = empty
    # Replicas starting together on an empty database: created once, by the migrations.
    assert all_at_once(lambda: registry_at(url, prefix, tmp_path / "home").create_schema()) == []
    registry = registry_at(url, prefix, tmp_path / "home")
    assert registry.pointer().revision == 0 and registry.tags() == []
    log = InferenceLog(url, prefix)
    assert log.schema_state().state == "current"  # the log's tables came with them
    other = f"c{prefix}"
    try:
        previous_build_registry(log.engine, other)
        assert shape(log.engine, prefix) == shape(log.engine, other)
    finally:
        drop_registry_schema(log.engine, other)
        log.close()
    out = db_cli(url, prefix, "current")
    assert out.returncode == 0 and f"database: {HEAD}" in out.stdout, out.stderr
    out = db_cli(url, prefix, "check")
    assert out.returncode == 0 and "model registry is current" in out.stdout, out.stderr


@pytest.mark.parametrize("log_revision", [BEFORE_REGISTRY, None])
def test_registry_tables_made_by_create_all_are_adopted_with_their_rows(
    empty, tmp_path, source, log_revision
):
    """A database of the build before 0003_registry: its log at 0002 (or no log at all, when
    only training ran) and registry tables made by create_all, holding two promoted models."""
    url, prefix = empty
    scratch = registry_at(f"sqlite:///{tmp_path / 'scratch.sqlite3'}", "vigil_", tmp_path / "s")
    first, second = saved_and_promoted(scratch, source)
    log = InferenceLog(url, prefix)
    if log_revision is not None:
        migrations.upgrade(log.engine, prefix, log_revision)
    previous_build_registry(log.engine, prefix)
    copy_registry(scratch, log.engine, prefix)

    registry = registry_at(url, prefix, tmp_path / "replica")
    if log_revision is None:
        # No version yet: a starting process creates the schema and adopts the tables.
        assert log.schema_state().state == "empty"
    else:
        # An older version: refused, and the message is one /readyz may show.
        with pytest.raises(RegistrySchemaError) as refused:
            registry.pointer()
        assert isinstance(refused.value, LogSchemaError)
        assert f"{BEFORE_REGISTRY}, this build needs {HEAD}" in str(refused.value)
        assert "run `vigil db upgrade`" in str(refused.value)
        out = db_cli(url, prefix, "check")
        assert out.returncode == 1 and "vigil db upgrade" in out.stderr
        out = db_cli(url, prefix, "upgrade")
        assert out.returncode == 0, out.stderr
        assert f"{BEFORE_REGISTRY} -> {HEAD}" in out.stdout
    assert registry.production_tag() == second
    assert log.schema_state().state == "current"
    assert [h.tag for h in registry.history()] == [first, second]
    bundle = registry.load_production()  # every artifact verified against its sha256
    rows = source.reference[source.schema.names]
    assert (bundle.pipeline.predict(rows) == source.pipeline.predict(rows)).all()
    assert registry.rollback() == first
    third = registry.save(source.pipeline, source.contract, source.reference)
    assert registry.tags() == [first, second, third]
    assert db_cli(url, prefix, "upgrade").returncode == 0  # again: nothing to do
    assert registry_at(url, prefix, tmp_path / "other").production_tag() == first
    log.close()


def test_registry_tables_that_differ_are_not_adopted_and_nothing_changes(empty):
    url, prefix = empty
    log = InferenceLog(url, prefix)
    migrations.upgrade(log.engine, prefix, BEFORE_REGISTRY)
    with log.engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {prefix}models (id INTEGER PRIMARY KEY, tag VARCHAR(100) NOT NULL, "
                "created_at FLOAT NOT NULL, contract TEXT NOT NULL, metrics TEXT NOT NULL)"
            )
        )
    out = db_cli(url, prefix, "upgrade")
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"{prefix}models: no column dataset_sha256" in out.stderr
    assert "column tag is VARCHAR(100), not VARCHAR(200)" in out.stderr
    assert "column tag is not unique" in out.stderr
    state = log.schema_state()
    assert (state.state, state.revision) == ("behind", BEFORE_REGISTRY)
    with log.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert f"{prefix}production" not in tables and f"{prefix}blobs" not in tables
    log.close()


def test_downgrade_keeps_the_registry_for_the_previous_build_and_upgrade_adopts_it(
    empty, tmp_path, source
):
    url, prefix = empty
    registry = registry_at(url, prefix, tmp_path / "home")
    first, second = saved_and_promoted(registry, source)
    out = db_cli(url, prefix, "downgrade", BEFORE_REGISTRY)
    assert out.returncode == 0, out.stderr
    log = InferenceLog(url, prefix)
    assert (log.schema_state().state, log.schema_state().revision) == ("behind", BEFORE_REGISTRY)
    # create_schema: what a process does at its start (a running one checked at its own).
    with pytest.raises(RegistrySchemaError, match="vigil db upgrade"):
        registry_at(url, prefix, tmp_path / "new").create_schema()
    # What the previous build does with it: create_all finds its tables, rows and all.
    tables = registry_tables(prefix)
    tables.metadata.create_all(log.engine)
    with log.engine.connect() as conn:
        m = tables.models
        assert conn.scalars(sa.select(m.c.tag).order_by(m.c.id)).all() == [first, second]
        assert conn.scalar(sa.select(tables.production.c.tag)) == second
    assert db_cli(url, prefix, "upgrade").returncode == 0
    assert registry_at(url, prefix, tmp_path / "new").production_tag() == second

    # Down to base: the log's tables go, the registry's stay; a starting process adopts them.
    assert db_cli(url, prefix, "downgrade", "base").returncode == 0
    assert log.schema_state().state == "empty"
    assert db_cli(url, prefix, "check").returncode == 1
    restarted = registry_at(url, prefix, tmp_path / "base")
    restarted.create_schema()
    assert restarted.production_tag() == second
    assert log.schema_state().state == "current"
    log.close()
