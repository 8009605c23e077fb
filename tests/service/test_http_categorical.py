"""A user's model with categorical features and text labels, served with no code change."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest

from tests.conftest import free_port
from tests.service.conftest import copy_home, mixed_instance
from tests.support.prom import scrape, total
from tests.support.service import start_service
from vigil.log.inference_log import InferenceLog

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(mixed_home_template, tmp_path_factory):
    home = copy_home(mixed_home_template, tmp_path_factory.mktemp("mixed") / "home")
    with start_service(home, free_port(), {"VIGIL_WORKERS": "2"}) as handle:
        yield handle


def predict(server, instances) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", json={"instances": instances}, timeout=30)


def test_text_labels_and_probabilities(server):
    response = predict(server, [mixed_instance(), mixed_instance(plan="basic", age=70.0)])
    assert response.status_code == 200, response.text
    body = response.json()
    assert all(p in ("no", "yes") for p in body["predictions"])
    assert all(set(p) == {"no", "yes"} for p in body["probabilities"])


def test_unseen_categories_are_accepted_logged_and_counted(server):
    before = scrape(server.url)
    rows = [
        mixed_instance(plan="enterprise"),
        mixed_instance(plan="platinum", region="mars"),
        mixed_instance(region=None, age=None),
    ]
    response = predict(server, rows)
    assert response.status_code == 200, response.text
    after = scrape(server.url)
    for feature, n in (("plan", 2), ("region", 1)):
        gained = total(after, "vigil_unseen_category_total", feature=feature) - total(
            before, "vigil_unseen_category_total", feature=feature
        )
        assert gained == n, feature

    log = InferenceLog(f"sqlite:///{server.home / 'inference.sqlite3'}")
    try:
        frame = log.latest(response.json()["model_version"], 100).frame.set_index("prediction_id")
    finally:
        log.close()
    ids = response.json()["prediction_ids"]
    assert frame.loc[ids[0], "plan"] == "enterprise"
    assert frame.loc[ids[1], "region"] == "mars"
    assert pd.isna(frame.loc[ids[2], "region"]) and pd.isna(frame.loc[ids[2], "age"])


@pytest.mark.parametrize(
    ("field", "value"), [("plan", 3), ("plan", True), ("age", "old"), ("region", 1.5)]
)
def test_wrong_types_for_either_kind_are_400(server, field, value):
    response = predict(server, [mixed_instance(**{field: value})])
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == ["instances", 0, field]
