"""How many good requests fail beside one whose answer overflows:
``python -m bench.neighbours_bench``.

Not a test: it measures and prints. A linear regressor of ``diabetes`` (served by ONNX, which
computes in float32) in a one-worker service; five rounds of one request whose first feature
is float32's largest value sent at the same time as seven ordinary ones, so the micro-batcher
puts them in one batch. Prints the status codes of each kind, and how many good requests did
not get 200.
"""

from __future__ import annotations

import concurrent.futures
import tempfile
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

ROUNDS = 5
GOOD_PER_ROUND = 7
F32_MAX = float(np.finfo(np.float32).max)


def main() -> None:
    from tests.conftest import free_port
    from tests.support.service import start_service
    from training.data import load
    from training.train import train
    from vigil.registry import Registry
    from vigil.settings import get_settings

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        settings = get_settings(home=home)
        outcome = train(
            settings, load(None, None, dataset="diabetes"), estimator="linear", promote=True
        )
        assert outcome.promoted, outcome
        bundle = Registry(settings).load_production()
        good = bundle.reference[bundle.schema.names].head(1).to_dict(orient="records")[0]
        bad = {name: 0.0 for name in bundle.schema.names}
        bad[bundle.schema.names[0]] = F32_MAX
        env = {"VIGIL_WORKERS": "1", "VIGIL_API_KEY": "bench-key", "VIGIL_INFERENCE": "onnx"}
        with start_service(home, free_port(), env) as svc:
            headers = {"Authorization": "Bearer bench-key"}
            good_codes: Counter[int] = Counter()
            bad_codes: Counter[int] = Counter()
            with (
                httpx.Client(timeout=30, headers=headers) as client,
                concurrent.futures.ThreadPoolExecutor(GOOD_PER_ROUND + 1) as pool,
            ):

                def post(row: dict) -> int:
                    return client.post(f"{svc.url}/predict", json={"instances": [row]}).status_code

                for _ in range(ROUNDS):
                    rows = [bad] + [good] * GOOD_PER_ROUND
                    codes = list(pool.map(post, rows))
                    bad_codes[codes[0]] += 1
                    good_codes.update(codes[1:])
    failed = sum(n for code, n in good_codes.items() if code != 200)
    print(f"overflowing request: {dict(bad_codes)}")
    print(f"good neighbours: {dict(good_codes)}")
    print(f"good requests not answered 200: {failed} of {ROUNDS * GOOD_PER_ROUND}")


if __name__ == "__main__":
    main()
