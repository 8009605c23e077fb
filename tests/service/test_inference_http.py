"""Both runtimes through the real service: identical labels and probabilities within the
recorded tolerance on every row of the data; ONNX served without unpickling; fallback and
VIGIL_INFERENCE=onnx refusal shown by /model and /readyz."""

from __future__ import annotations

import contextlib
import json

import httpx
import numpy as np
import pytest

from tests.conftest import free_port
from tests.service.conftest import copy_home, mixed_frame
from tests.support.processes import wait_until
from tests.support.prom import scrape, total
from tests.support.registry import corrupt_artifact
from tests.support.service import launch, start_service, wait_ready
from training.data import load
from training.train import train
from vigil.registry.store import Registry
from vigil.settings import get_settings

pytestmark = pytest.mark.integration

CHUNK = 200


def _pipeline_file(home) -> None:
    """Make the pickle unloadable: an ONNX server must never read it."""
    settings = get_settings(home=home)
    corrupt_artifact(settings, Registry(settings).production_tag())


@contextlib.contextmanager
def both_runtimes(template, tmp_path):
    sk_home = copy_home(template, tmp_path / "sklearn")
    onnx_home = copy_home(template, tmp_path / "onnx")
    _pipeline_file(onnx_home)
    sk = launch(sk_home, free_port(), {"VIGIL_WORKERS": "1", "VIGIL_INFERENCE": "sklearn"})
    ox = launch(onnx_home, free_port(), {"VIGIL_WORKERS": "1", "VIGIL_INFERENCE": "onnx"})
    try:
        wait_ready(sk)
        wait_ready(ox)
        yield sk, ox
    finally:
        sk.terminate()
        ox.terminate()


def predict_all(url: str, rows: list[dict]) -> tuple[list, np.ndarray]:
    labels, probs = [], []
    for i in range(0, len(rows), CHUNK):
        r = httpx.post(f"{url}/predict", json={"instances": rows[i : i + CHUNK]}, timeout=60)
        assert r.status_code == 200, r.text
        labels += r.json()["predictions"]
        probs += [list(p.values()) for p in r.json()["probabilities"]]
    return labels, np.array(probs)


def json_rows(frame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))  # NaN -> null


def assert_equal_runtimes(sk, ox, rows, tolerance):
    for handle, runtime in ((sk, "sklearn"), (ox, "onnx")):
        card = httpx.get(f"{handle.url}/model").json()
        assert card["inference"]["runtime"] == runtime, card["inference"]
        assert total(scrape(handle.url), "vigil_model_info", runtime=runtime) == 1
    sk_labels, sk_probs = predict_all(sk.url, rows)
    ox_labels, ox_probs = predict_all(ox.url, rows)
    assert sk_labels == ox_labels
    # Responses round to 6 places: allow that rounding on top of the recorded tolerance.
    assert np.abs(sk_probs - ox_probs).max() <= tolerance + 1e-6


def _started_readiness(handle) -> httpx.Response | None:
    """/readyz's answer once the worker has tried to load the model (None before)."""
    assert handle.proc.poll() is None, handle.log_text()
    try:
        response = httpx.get(f"{handle.url}/readyz", timeout=2)
    except httpx.HTTPError:
        return None
    return response if "VIGIL_INFERENCE" in response.text or response.status_code == 200 else None


def test_default_model_is_equal_through_both_runtimes(trained_home_template, tmp_path):
    bundle = Registry(get_settings(home=trained_home_template)).load_production()
    rows = json_rows(load(None, None).features)  # every row of the data
    with both_runtimes(trained_home_template, tmp_path) as (sk, ox):
        assert_equal_runtimes(sk, ox, rows, bundle.contract["onnx"]["check"]["tolerance"])


def test_mixed_csv_model_is_equal_through_both_runtimes(tmp_path):
    frame = mixed_frame(n=600, seed=11)
    frame.loc[::9, "plan"] = None  # nulls in both kinds of column
    frame.loc[::13, "income"] = None
    csv = tmp_path / "churn.csv"
    frame.to_csv(csv, index=False)
    template = tmp_path / "template"
    outcome = train(get_settings(home=template), load(csv, "churned"), promote=True)
    assert outcome.promoted, outcome
    bundle = Registry(get_settings(home=template)).load_production()
    assert bundle.contract["inference"]["runtime"] == "onnx", bundle.contract["inference"]
    features = frame.drop(columns=["churned"])
    unseen = features.copy()
    unseen.loc[::3, "plan"] = "enterprise"
    unseen.loc[1::3, "region"] = "mars"
    rows = json_rows(features) + json_rows(unseen)
    with both_runtimes(template, tmp_path) as (sk, ox):
        assert_equal_runtimes(sk, ox, rows, bundle.contract["onnx"]["check"]["tolerance"])


def test_unconvertible_model_falls_back_and_onnx_only_is_not_ready(tmp_path):
    from tests.training.test_onnx_export import spline_forest

    home = tmp_path / "home"
    outcome = train(
        get_settings(home=home), load(None, None), n_estimators=10, build=spline_forest,
        promote=True,
    )  # fmt: skip
    assert outcome.promoted, outcome
    with start_service(home, free_port(), {"VIGIL_WORKERS": "1"}) as auto:
        inference = httpx.get(f"{auto.url}/model").json()["inference"]
        assert inference["runtime"] == "sklearn"
        assert "SplineTransformer" in inference["reason"]
    strict = launch(copy_home(home, tmp_path / "strict"), free_port(),
                    {"VIGIL_WORKERS": "1", "VIGIL_INFERENCE": "onnx"})  # fmt: skip
    try:
        # Once the worker has started, readiness refuses and names the setting to change.
        readiness = wait_until(lambda: _started_readiness(strict), 90, "the strict worker")
        assert readiness.status_code == 503 and "VIGIL_INFERENCE=onnx" in readiness.text
        r = httpx.post(f"{strict.url}/predict", json={"instances": [{}]}, timeout=10)
        assert r.status_code == 503 and "VIGIL_INFERENCE=onnx" in r.json()["error"]
        assert httpx.get(f"{strict.url}/readyz", timeout=10).status_code == 503
    finally:
        strict.terminate()
