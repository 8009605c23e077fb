"""The real service (``bentoml serve``) under the least-privilege role of docs/deploy.md:
insert on the log, read on the registry, no DDL. It predicts, logs and takes feedback; what
the role may not do is refused by PostgreSQL."""

from __future__ import annotations

import time
import uuid

import httpx
import psycopg
import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_URL, free_port, postgres_log
from tests.service.conftest import copy_home
from tests.support.registry import publish
from tests.support.service import start_service
from vigil.log import partitions as log_partitions
from vigil.log.inference_log import InferenceLog
from vigil.registry.schema import drop_registry_schema
from vigil.registry.store import Registry
from vigil.settings import get_settings
from vigil.store.roles import service_grants

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def service_role():
    """A login role of its own for this test (roles are cluster-wide), dropped after."""
    role = f"vigil_svc_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
    yield role
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP OWNED BY "{role}"')
        admin.execute(f'DROP ROLE "{role}"')


def test_the_service_runs_under_a_role_without_ddl(
    trained_home_template, tmp_path, service_role, default_rows
):
    log = postgres_log()  # the schema, made by the owner (the migration step)
    prefix = log.table_prefix
    home = copy_home(trained_home_template, tmp_path / "home")
    owner = get_settings(home=home, database_url=POSTGRES_URL, table_prefix=prefix)
    tag = publish(get_settings(home=home), owner)
    today = int(time.time() // log_partitions.DAY)
    ahead = log_partitions.day_partition(prefix, today + log_partitions.AHEAD_DAYS).name
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        for statement in service_grants(prefix, service_role):
            admin.execute(statement)
        # A day partition still to be made: the service must leave it to the monitor, not
        # try (and fail) to create it on its write path.
        admin.execute(f'DROP TABLE "{ahead}"')
    role_url = POSTGRES_URL.replace("postgres@", f"{service_role}@")
    env = {
        "VIGIL_DATABASE_URL": role_url,
        "VIGIL_TABLE_PREFIX": prefix,
        "VIGIL_MANAGE_SCHEMA": "false",
        "VIGIL_WORKERS": "1",
    }
    try:
        with start_service(home, free_port(), env) as handle:
            answer = httpx.post(
                f"{handle.url}/predict", json={"instances": default_rows[:3]}, timeout=30
            )
            assert answer.status_code == 200, answer.text + handle.log_text()[-3000:]
            ids = answer.json()["prediction_ids"]
            labels = [{"prediction_id": pid, "label": 1} for pid in ids]
            feedback = httpx.post(f"{handle.url}/feedback", json={"labels": labels}, timeout=30)
            assert feedback.status_code == 200, feedback.text
            assert feedback.json()["accepted"] == 3
            assert "permission denied" not in handle.log_text()
        assert log.count(tag) == 3
        assert len(log.labeled(tag, 10)) == 3
        # The monitor makes the missing day (InferenceLog.ensure_partitions, every tick).
        monitor_log = InferenceLog(POSTGRES_URL, prefix)
        monitor_log.ensure_partitions()
        with monitor_log.engine.connect() as conn:
            assert ahead in {p.name for p in log_partitions.partitions(conn, prefix)}
        monitor_log.close()

        # What the role may not do, PostgreSQL refuses: DDL (a day partition included),
        # deleting the log, changing the registry.
        refused = [
            lambda c: c.exec_driver_sql(f'CREATE TABLE "{prefix}intruder" (x int)'),
            lambda c: log_partitions.create(c, prefix, [today + 30]),
            lambda c: c.exec_driver_sql(f'DROP TABLE "{prefix}feedback"'),
            lambda c: c.exec_driver_sql(f'DELETE FROM "{prefix}requests"'),
            lambda c: c.exec_driver_sql(f'UPDATE "{prefix}production" SET tag = NULL'),
            lambda c: c.exec_driver_sql(f"INSERT INTO \"{prefix}blobs\" VALUES ('x', 1, '')"),
        ]
        engine = sa.create_engine(role_url.replace("postgresql://", "postgresql+psycopg://"))
        for attempt in refused:
            with pytest.raises(sa.exc.ProgrammingError, match="InsufficientPrivilege"):
                with engine.begin() as conn:
                    attempt(conn)
        engine.dispose()
    finally:
        log.drop_schema()
        drop_registry_schema(Registry(owner).engine, prefix)
        log.close()
