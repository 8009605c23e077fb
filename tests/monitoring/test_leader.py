"""Leader election on PostgreSQL: one holder per table prefix; a closed or broken session
frees the lock for a standby at once."""

from __future__ import annotations

import pytest

from monitoring.leader import AdvisoryLockLeader, lock_key
from tests.support.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_one_leader_per_prefix_and_takeover_when_the_leader_goes(postgres_url):
    url, prefix = postgres_url
    a, b = AdvisoryLockLeader(url, lock_key(prefix)), AdvisoryLockLeader(url, lock_key(prefix))
    other = AdvisoryLockLeader(url, lock_key(prefix + "x"))
    try:
        assert a.poll() and not b.poll()
        assert other.poll()  # another deployment on the same database elects its own
        a._close()  # the session ends: the lock goes with it
        # The server ends the session (and frees the lock) a moment after the client closes.
        wait_until(b.poll, 5, "the standby to take the freed lock")
        assert b.is_leader
        assert not a.poll()
    finally:
        for leader in (a, b, other):
            leader.stop()


def test_a_broken_connection_loses_leadership_at_the_next_poll(postgres_url):
    url, prefix = postgres_url
    a = AdvisoryLockLeader(url, lock_key(prefix))
    try:
        assert a.poll()
        pid = a._conn.info.backend_pid
        import psycopg

        with psycopg.connect(a.url, autocommit=True) as admin:
            # With a timeout it returns once the session is gone, not when it is signalled.
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        assert not a.poll() and not a.is_leader
        assert a.poll()  # reconnects and takes the free lock again
    finally:
        a.stop()


def test_a_killed_leader_exports_nothing_after_the_standby_took_over(production, postgres_url):
    """The leader's backend is killed; a standby takes the lock at once, while the old leader
    still believes it leads (it has not polled). Its next check is fenced: no verdict of it
    is exported after the standby's first, and it prunes nothing."""
    import psycopg
    from prometheus_client import CollectorRegistry

    from monitoring.check import Checker
    from monitoring.metrics import MonitorMetrics
    from monitoring.monitor import Monitor
    from vigil.settings import get_settings

    _, log, _ = production
    url, prefix = postgres_url
    settings = get_settings()
    exported: list[str] = []
    pruned: list[str] = []

    def monitor(name: str) -> Monitor:
        metrics = MonitorMetrics(CollectorRegistry(), process=False)
        record = metrics.record_check
        metrics.record_check = lambda *args: (exported.append(name), record(*args))
        leader = AdvisoryLockLeader(url, lock_key(prefix))  # polled by hand: no thread
        made = Monitor(
            settings, metrics, checker=Checker(settings, report=False, log=log), leader=leader
        )
        made.housekeeping.prune = lambda: pruned.append(name)
        return made

    old, standby = monitor("old"), monitor("standby")
    try:
        assert old.leader.poll() and not standby.leader.poll()
        old.run_once()
        assert exported == ["old"] and pruned == ["old"]
        with psycopg.connect(old.leader.url, autocommit=True) as admin:
            pid = old.leader._conn.info.backend_pid
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        assert standby.leader.poll()
        assert old.leader.is_leader  # two leaders, as far as each knows
        standby.run_once()
        assert old.run_once() is None
        assert exported == ["old", "standby"] and pruned == ["old", "standby"]
        assert not old.leader.is_leader
    finally:
        old.leader.stop()
        standby.leader.stop()


def test_a_killed_leader_records_no_candidate_verdict_after_the_standby_took_over(
    production, postgres_url
):
    """As exports and pruning: the old leader's next check stores no verdict on the running
    candidate (what ``promote --if-better`` reads) once a standby holds the lock."""
    import psycopg
    from prometheus_client import CollectorRegistry

    from monitoring.check import Checker
    from monitoring.metrics import MonitorMetrics
    from monitoring.monitor import Monitor
    from vigil.registry.candidates import Candidates
    from vigil.registry.store import Registry
    from vigil.settings import get_settings

    _, log, bundle = production
    url, prefix = postgres_url
    settings = get_settings()
    registry = Registry(settings)
    candidate = registry.save(bundle.pipeline, bundle.contract, bundle.reference)
    Candidates(registry).start(candidate, "shadow")
    verdicts = Candidates(registry).tables.verdicts

    def stored() -> int:
        import sqlalchemy as sa

        with registry.engine.connect() as conn:
            return conn.scalar(sa.select(sa.func.count()).select_from(verdicts))

    def monitor() -> Monitor:
        metrics = MonitorMetrics(CollectorRegistry(), process=False)
        leader = AdvisoryLockLeader(url, lock_key(prefix))  # polled by hand: no thread
        made = Monitor(
            settings, metrics, checker=Checker(settings, report=False, log=log), leader=leader
        )
        made.prune = lambda: None
        return made

    old, standby = monitor(), monitor()
    try:
        assert old.leader.poll() and not standby.leader.poll()
        old.run_once()
        assert stored() == 1
        with psycopg.connect(old.leader.url, autocommit=True) as admin:
            pid = old.leader._conn.info.backend_pid
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        assert standby.leader.poll() and old.leader.is_leader
        standby.run_once()
        assert stored() == 2
        assert old.run_once() is None
        assert stored() == 2  # the old leader's verdict was not written
    finally:
        old.leader.stop()
        standby.leader.stop()
