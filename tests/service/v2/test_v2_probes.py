"""The protocol's readiness probes never hold up the event loop.

A service whose database does not answer is alive but not ready, and retries its start from the
readiness probe; that retry waits on the database until its timeout. Meanwhile ``/livez`` (what
Kubernetes restarts a pod on) must answer at once.
"""

from __future__ import annotations

import concurrent.futures
import socket
import time

import httpx
import pytest

from tests.conftest import free_port
from tests.support.service import launch, wait_alive

LIVEZ_BUDGET_SECONDS = 0.1
LOG_TIMEOUT_SECONDS = 3
RETRY_DUE_SECONDS = 5.5  # a failed start is retried from a probe at most every 5 s


@pytest.fixture(scope="module")
def silent_database():
    """A TCP listener that completes connections (the kernel's backlog) and never says a
    word: a PostgreSQL client waits on it until its own timeout."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        yield f"postgresql://postgres@127.0.0.1:{listener.getsockname()[1]}/test"


def _timed_get(client: httpx.Client, url: str) -> tuple[int, float]:
    # A client per caller, connected once: a new client's set-up costs more than the budget.
    start = time.perf_counter()
    status = client.get(url).status_code
    return status, time.perf_counter() - start


@pytest.fixture(scope="module")
def waiting_service(trained_home_template, tmp_path_factory, silent_database):
    """One service for both probes: alive, and its database never answers."""
    from tests.service.conftest import copy_home

    home = copy_home(trained_home_template, tmp_path_factory.mktemp("probes") / "home")
    env = {
        "VIGIL_WORKERS": "1",
        "VIGIL_DATABASE_URL": silent_database,
        "VIGIL_LOG_TIMEOUT_SECONDS": str(LOG_TIMEOUT_SECONDS),
    }
    handle = launch(home, free_port(), env)
    try:
        wait_alive(handle)
        yield handle
    finally:
        handle.terminate()


@pytest.mark.integration
@pytest.mark.parametrize("probe", ["/v2/health/ready", "/v2/models/vigil-model/ready"])
def test_livez_answers_while_v2_readiness_waits_on_the_database(waiting_service, probe):
    handle = waiting_service
    waited, livez = [], []
    with (
        concurrent.futures.ThreadPoolExecutor(1) as pool,
        httpx.Client(timeout=30) as prober,
        httpx.Client(timeout=30) as liveness,
    ):
        _timed_get(prober, f"{handle.url}/livez")
        _timed_get(liveness, f"{handle.url}/livez")
        for _ in range(2):
            time.sleep(RETRY_DUE_SECONDS)  # so that this probe retries the start
            ready = pool.submit(_timed_get, prober, f"{handle.url}{probe}")
            time.sleep(0.3)
            status, seconds = _timed_get(liveness, f"{handle.url}/livez")
            assert status == 200
            livez.append(seconds)
            ready_status, ready_seconds = ready.result()
            assert ready_status == 503
            waited.append(ready_seconds)
    print(f"{probe}: waited {max(waited):.2f} s; /livez took at most {max(livez):.3f} s")
    # The probe did wait on the database, and /livez did not wait for it.
    assert min(waited) > 1.0, waited
    assert max(livez) < LIVEZ_BUDGET_SECONDS, livez
