"""Every PostgreSQL connection of Vigil has the same bounded waits, and keeps to them when the
database is blackholed: calls give up within their bound and a standby monitor takes over."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from monitoring.leader import IDLE_SESSION_SECONDS, RETRY_SECONDS, AdvisoryLockLeader, lock_key
from tests.conftest import missing
from tests.support import blackhole
from tests.support.processes import REPO, base_env
from vigil.log.inference_log import InferenceLog
from vigil.registry.store import Registry
from vigil.settings import get_settings
from vigil.store import session as pg_session

SETTINGS = (
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "tcp_user_timeout",
    "tcp_keepalives_idle",
)


def _show(execute) -> dict[str, str]:
    return {name: execute(f"SHOW {name}") for name in SETTINGS}


@pytest.mark.postgres
def test_every_engine_has_the_same_timeouts_and_keepalives(postgres_url, tmp_path):
    url, prefix = postgres_url
    settings = get_settings(
        home=tmp_path, database_url=url, table_prefix=prefix, log_timeout_seconds=2
    )
    log = InferenceLog.from_settings(settings)
    registry = Registry(settings)
    seen = {}
    for name, engine in (("log", log.engine), ("registry", registry.engine)):
        with engine.connect() as conn:
            seen[name] = _show(lambda sql, c=conn: c.exec_driver_sql(sql).scalar())
    leader = AdvisoryLockLeader(url, lock_key(prefix))
    leader._connect()
    seen["leader"] = _show(lambda sql: leader._conn.execute(sql).fetchone()[0])
    leader._close()
    log.close()
    assert (
        seen["log"]
        == seen["registry"]
        == {
            "statement_timeout": "2s",
            "lock_timeout": "2s",
            "idle_in_transaction_session_timeout": "12s",
            "tcp_user_timeout": "5000",  # these two are shown without a unit
            "tcp_keepalives_idle": "2",
        }
    )
    assert all(seen["leader"][name] not in ("0", "0ms") for name in SETTINGS), seen["leader"]


@pytest.mark.postgres
def test_a_blackholed_database_is_given_up_and_a_standby_takes_over(
    postgres_url, tmp_path, trained_home_template
):
    """A check, a reload and a promote run in processes whose link to PostgreSQL is cut (packets
    dropped, sockets left open), as is the leading monitor's; a standby on an intact link."""
    reason = blackhole.available()
    if reason:
        missing(reason)
    url, prefix = postgres_url
    timeout = 2.0
    registry = Registry(get_settings(home=tmp_path / "home", database_url=url, table_prefix=prefix))
    source = Registry(get_settings(home=trained_home_template)).load_production()
    a, b = (registry.save(source.pipeline, source.contract, source.reference) for _ in range(2))
    registry.promote(a)
    bound = pg_session.give_up_seconds(timeout) + 1.5  # plus a process's own slowness
    takeover_bound = IDLE_SESSION_SECONDS + RETRY_SECONDS + 2

    with blackhole.Blackhole(url) as hole:
        env = base_env(
            database_url=hole.url,
            table_prefix=prefix,
            log_timeout_seconds=timeout,
            home=tmp_path / "cut-home",
        )

        def start(*args: str) -> subprocess.Popen:
            return hole.popen(
                [sys.executable, "-m", "tests.support.fault_client", *args],
                cwd=REPO,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=(tmp_path / f"{args[0]}.err").open("w"),
                text=True,
            )

        old_leader = start("leader")
        changes: list[dict] = []
        reader = threading.Thread(
            target=lambda: changes.extend(json.loads(line) for line in old_leader.stdout),
            daemon=True,
        )
        reader.start()
        _wait(lambda: any(c["leading"] for c in changes), 30, "the first monitor never led")
        standby_led: list[float] = []
        standby = AdvisoryLockLeader(url, lock_key(prefix))
        standby.start(lambda leading: leading and standby_led.append(time.time()))
        assert not standby.is_leader
        calls = {op: start(op, *([b] if op == "promote" else [])) for op in ("check", "reload")}
        calls["promote"] = start("promote", b)
        for op, proc in calls.items():
            assert proc.stdout.readline().strip() == "ready", (tmp_path / f"{op}.err").read_text()

        cut_at = time.time()
        hole.cut()
        for proc in calls.values():
            proc.stdin.write("\n")
            proc.stdin.flush()
        results = {}
        for op, proc in calls.items():
            out, _ = proc.communicate(timeout=bound + 30)
            results[op] = json.loads(out.strip().splitlines()[-1])
        _wait(lambda: standby_led, takeover_bound + 10, "the standby never took over")
        took_over = standby_led[0] - cut_at
        stepped_down = [c["at"] - cut_at for c in changes if not c["leading"]][-1:]
        standby.stop()
        old_leader.kill()
        old_leader.wait(10)

    print(f"\nblackhole (timeout {timeout:.0f} s, bound {bound:.1f} s):")
    for op, result in results.items():
        print(f"  {op}: gave up after {result['seconds']:.2f} s ({result['error']})")
    print(f"  old leader stepped down after {stepped_down} s; standby led after {took_over:.2f} s")
    for op, result in results.items():
        assert result["error"] is not None and result["seconds"] < bound, (op, result)
    assert took_over < takeover_bound
    assert stepped_down and stepped_down[0] < took_over
    assert registry.production_tag() == a


def _wait(condition, seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(message)
        time.sleep(0.1)
