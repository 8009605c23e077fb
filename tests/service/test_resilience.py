"""Nothing acknowledged is lost: kill -9 under load, an unwritable store, SIGTERM under load;
and a service that cannot load its model or log is alive but not ready."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from tests.conftest import free_port
from tests.service.conftest import copy_home
from tests.support.prom import scrape, total
from tests.support.service import (
    ROOT,
    ServiceHandle,
    launch,
    service_env,
    start_service,
    wait_alive,
    wait_ready,
)
from vigil.log.inference_log import InferenceLog

pytestmark = pytest.mark.integration

CLIENTS = 8
ROWS_PER_REQUEST = 3


@dataclass
class Load:
    """Client threads posting /predict until stopped; what came back, by kind."""

    url: str
    rows: list[dict]
    acked: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    bad_bodies: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(CLIENTS)]
        for thread in self.threads:
            thread.start()

    def _run(self, i: int) -> None:
        with httpx.Client(timeout=30) as client:
            n = 0
            while not self.stop.is_set():
                start = (i * 17 + n) % (len(self.rows) - ROWS_PER_REQUEST)
                n += 1
                body = {"instances": self.rows[start : start + ROWS_PER_REQUEST]}
                try:
                    response = client.post(f"{self.url}/predict", json=body)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    time.sleep(0.05)
                    continue
                with self.lock:
                    self.statuses[response.status_code] = (
                        self.statuses.get(response.status_code, 0) + 1
                    )
                    if response.status_code == 200:
                        try:
                            ids = response.json()["prediction_ids"]
                            assert len(ids) == ROWS_PER_REQUEST
                            self.acked.extend(ids)
                        except (ValueError, KeyError, AssertionError):
                            self.bad_bodies.append(response.text[:200])

    def wait_for(self, acked: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < acked:
            assert time.monotonic() < deadline, (len(self.acked), self.statuses, self.errors[-3:])
            time.sleep(0.05)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)


def logged_ids(home) -> set[str]:
    log = InferenceLog(f"sqlite:///{home / 'inference.sqlite3'}")
    try:
        return log.prediction_ids()
    finally:
        log.close()


def stopped_under_load(home, rows, stop) -> tuple[Load, ServiceHandle]:
    """A 2-worker service on ``home`` under load: once 300 requests are acknowledged,
    ``stop(handle)`` runs while the load goes on; whatever happens, nothing is left running."""
    handle = launch(home, free_port(), {"VIGIL_WORKERS": "2"})
    try:
        wait_ready(handle)
        load = Load(handle.url, rows)
        try:
            load.wait_for(acked=300)
            stop(handle)
        finally:
            load.finish()
    finally:
        handle.kill()
    return load, handle


def test_kill_9_under_load_loses_nothing_acknowledged(
    trained_home_template, tmp_path, default_rows
):
    home = copy_home(trained_home_template, tmp_path / "home")
    # The wrapper, the arbiter and both workers, mid-load.
    load, _ = stopped_under_load(home, default_rows, lambda handle: handle.kill())
    assert load.errors, "the kill should have cut some requests off"
    assert not load.bad_bodies

    # Restarted on the same home, the service serves again and the log holds every 200.
    with start_service(home, free_port(), {"VIGIL_WORKERS": "2"}) as again:
        response = httpx.post(f"{again.url}/predict", json={"instances": default_rows[:1]})
        assert response.status_code == 200
        missing = set(load.acked) - logged_ids(home)
        assert not missing, f"{len(missing)} of {len(load.acked)} acknowledged ids not logged"


def test_unwritable_store_answers_503_and_acknowledges_only_what_is_logged(
    trained_home_template, tmp_path, default_rows
):
    home = copy_home(trained_home_template, tmp_path / "home")
    env = {"VIGIL_WORKERS": "2", "VIGIL_LOG_TIMEOUT_SECONDS": "0.5"}
    with start_service(home, free_port(), env) as server:
        url = f"{server.url}/predict"
        first = httpx.post(url, json={"instances": default_rows[:2]}, timeout=30)
        assert first.status_code == 200
        before = scrape(server.url)

        # Everything runs as root here, so chmod cannot make the store read-only: hold its
        # write lock instead.
        locker = sqlite3.connect(home / "inference.sqlite3", isolation_level=None, timeout=5)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            blocked = [
                httpx.post(url, json={"instances": default_rows[i : i + 2]}, timeout=30)
                for i in range(4)
            ]
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        for response in blocked:
            assert response.status_code == 503, response.text
            body = response.json()
            assert set(body) == {"error", "detail"} and "inference log" in body["error"]
            assert "Traceback" not in response.text
        after = scrape(server.url)
        failures = total(after, "vigil_inference_log_failures_total") - total(
            before, "vigil_inference_log_failures_total"
        )
        assert failures == 8

        last = httpx.post(url, json={"instances": default_rows[10:11]}, timeout=30)
        assert last.status_code == 200
        acked = set(first.json()["prediction_ids"]) | set(last.json()["prediction_ids"])
        assert logged_ids(home) == acked  # and nothing that was refused


def test_sigterm_under_load_finishes_in_flight_requests(
    trained_home_template, tmp_path, default_rows
):
    home = copy_home(trained_home_template, tmp_path / "home")
    load, handle = stopped_under_load(home, default_rows, lambda handle: handle.terminate(60))
    assert handle.proc.returncode == 0, handle.log_text()[-3000:]
    assert not load.bad_bodies, load.bad_bodies[:3]
    cut = [e for e in load.errors if "complete message body" in e or "incomplete" in e.lower()]
    assert not cut, cut[:3]  # refused or never answered is fine; half an answer is not
    assert set(load.statuses) <= {200, 503}, load.statuses
    missing = set(load.acked) - logged_ids(home)
    assert not missing, f"{len(missing)} of {len(load.acked)} acknowledged ids not logged"
    assert "Completed async cleanup hook: shutdown" in handle.log_text()


def test_no_production_model_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "service", "serve"],
        cwd=ROOT,
        env=service_env(tmp_path / "empty-home", free_port()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "no production model" in result.stderr


def test_unreachable_log_is_alive_but_not_ready(trained_home_template, tmp_path, default_rows):
    home = copy_home(trained_home_template, tmp_path / "home")
    env = {
        "VIGIL_WORKERS": "1",
        "VIGIL_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nothing",
        "VIGIL_LOG_TIMEOUT_SECONDS": "1",
    }
    handle = launch(home, free_port(), env)
    try:
        wait_alive(handle, 90)
        assert httpx.get(f"{handle.url}/readyz", timeout=10).status_code == 503
        response = httpx.post(
            f"{handle.url}/predict", json={"instances": default_rows[:1]}, timeout=10
        )
        assert response.status_code == 503
        assert response.json()["error"].startswith("service not ready")
        assert httpx.get(f"{handle.url}/model", timeout=10).status_code == 503
    finally:
        handle.terminate()


def test_two_servers_on_one_home_keep_their_own_metrics(
    trained_home_template, tmp_path, default_rows
):
    """Replicas on one host share VIGIL_HOME (and the SQLite log); BentoML wipes its metrics
    directory when a server starts, so each server has its own."""
    home = copy_home(trained_home_template, tmp_path / "home")
    one = {"VIGIL_WORKERS": "1"}
    with start_service(home, free_port(), one) as first:
        body = {"instances": default_rows[:3]}
        assert httpx.post(f"{first.url}/predict", json=body, timeout=30).status_code == 200
        with start_service(home, free_port(), one) as second:
            assert httpx.post(f"{second.url}/predict", json=body, timeout=30).status_code == 200
            assert total(scrape(first.url), "vigil_predictions_total") == 3
            assert total(scrape(second.url), "vigil_predictions_total") == 3
        assert len(logged_ids(home)) == 6
