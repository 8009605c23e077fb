"""/livez latency while the V2 readiness probe waits on a silent database:
``python -m bench.probe_bench``.

Not a test: it measures and prints. A one-worker service whose ``VIGIL_DATABASE_URL`` points at
a listener that accepts connections and never answers (``VIGIL_LOG_TIMEOUT_SECONDS=3``), so the
service is alive but not ready and retries its start from the readiness probe. Three rounds of
``GET /v2/health/ready`` (each after the retry is due), with ``GET /livez`` polled meanwhile on a
client of its own; prints /livez's latency idle and while the probe waits.
"""

from __future__ import annotations

import concurrent.futures
import socket
import statistics
import tempfile
import time
from pathlib import Path

import httpx

RETRY_DUE_SECONDS = 5.5


def _timed_get(client: httpx.Client, url: str) -> tuple[int, float]:
    start = time.perf_counter()
    status = client.get(url).status_code
    return status, time.perf_counter() - start


def main() -> None:
    from tests.conftest import free_port
    from tests.support.service import launch
    from training.data import load
    from training.train import train
    from vigil.settings import get_settings

    with (
        tempfile.TemporaryDirectory() as tmp,
        socket.create_server(("127.0.0.1", 0), backlog=64) as silent,
    ):
        home = Path(tmp) / "home"
        outcome = train(get_settings(home=home), load(None, None), n_estimators=20, promote=True)
        assert outcome.promoted, outcome
        env = {
            "VIGIL_WORKERS": "1",
            "VIGIL_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/x",
            "VIGIL_LOG_TIMEOUT_SECONDS": "3",
        }
        handle = launch(home, free_port(), env)
        try:
            with (
                httpx.Client(timeout=30) as liveness,
                httpx.Client(timeout=30) as prober,
                concurrent.futures.ThreadPoolExecutor(1) as pool,
            ):
                deadline = time.monotonic() + 120
                while True:
                    try:
                        if liveness.get(f"{handle.url}/livez").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, handle.log_text()
                    time.sleep(0.2)
                idle = [_timed_get(liveness, f"{handle.url}/livez")[1] for _ in range(20)]
                busy, waited = [], []
                for _ in range(3):
                    time.sleep(RETRY_DUE_SECONDS)
                    ready = pool.submit(_timed_get, prober, f"{handle.url}/v2/health/ready")
                    while not ready.done():
                        busy.append(_timed_get(liveness, f"{handle.url}/livez")[1])
                        time.sleep(0.05)
                    waited.append(ready.result()[1])
        finally:
            handle.terminate()
    ms = 1000
    print(f"/v2/health/ready waited {min(waited):.2f}-{max(waited):.2f} s")
    print(f"/livez idle: median {statistics.median(idle) * ms:.1f} ms, max {max(idle) * ms:.1f} ms")
    print(
        f"/livez while the probe waits ({len(busy)} requests): median "
        f"{statistics.median(busy) * ms:.1f} ms, max {max(busy) * ms:.1f} ms"
    )


if __name__ == "__main__":
    main()
