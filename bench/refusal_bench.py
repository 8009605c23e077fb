"""What a refused 2 MB V2 request costs the worker: ``python -m bench.refusal_bench``.

Not a test: it measures and prints. A one-worker service of the default model (30 numeric
features); one at a time, requests whose single input is a ``[1000, 540]`` tensor, refused for
its 540 columns: as binary BYTES (2.16 MB of empty strings) and as JSON FP64 (``0.0`` 540,000
times). With one worker and one request at a time, a request's latency is the event loop's
time on it. Prints the median and the best of each.
"""

from __future__ import annotations

import json
import statistics
import struct
import tempfile
import time
from pathlib import Path

import httpx

SHAPE = [1000, 540]
REQUESTS = 15
INFER = "/v2/models/vigil-model/infer"


def bodies() -> dict[str, tuple[bytes, dict[str, str]]]:
    count = SHAPE[0] * SHAPE[1]
    raw = struct.pack("<I", 0) * count
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "BYTES",
                    "shape": SHAPE,
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()
    binary = (head + raw, {"Inference-Header-Content-Length": str(len(head))})
    data = "[" + ",".join(["0.0"] * count) + "]"
    text = f'{{"inputs":[{{"name":"x","datatype":"FP64","shape":[1000,540],"data":{data}}}]}}'
    return {"binary BYTES": binary, "JSON FP64": (text.encode(), {})}


def main() -> None:
    from tests.conftest import free_port
    from tests.support.service import start_service
    from training.data import load
    from training.train import train
    from vigil.settings import get_settings

    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        outcome = train(get_settings(home=home), load(None, None), n_estimators=20, promote=True)
        assert outcome.promoted, outcome
        env = {"VIGIL_WORKERS": "1", "VIGIL_MAX_BODY_BYTES": str(8 * 2**20)}
        with start_service(home, free_port(), env) as svc, httpx.Client(timeout=60) as client:
            for name, (body, headers) in bodies().items():
                seconds = []
                for _ in range(REQUESTS):
                    start = time.perf_counter()
                    answer = client.post(f"{svc.url}{INFER}", content=body, headers=headers)
                    seconds.append(time.perf_counter() - start)
                    assert answer.status_code == 400, answer.text
                figures[name] = (len(body), seconds, answer.json()["error"])
    for name, (size, seconds, error) in figures.items():
        print(
            f"{name} ({size / 1e6:.2f} MB): median {statistics.median(seconds) * 1000:.0f} ms, "
            f"best {min(seconds) * 1000:.0f} ms; {error[:80]}"
        )


if __name__ == "__main__":
    main()
