"""A regressor's shadow on a live 2-worker service: answers unchanged, the shadow's numbers
logged under the same ids, labels through /feedback, and the monitor's candidate verdict for
a regressor (agreement as mean absolute difference, MAE and RMSE of both models, Wilcoxon's
test) undecided below the minimum of labeled rows."""

from __future__ import annotations

import json

import httpx
import pytest

from monitoring.check import Checker
from tests.conftest import free_port
from tests.service.test_candidate_http import (
    answers,
    run_cli,
    wait_following,
    wait_scored,
    without_ids,
)
from tests.support.candidates import diabetes_rows, save_regressor
from tests.support.service import start_service
from vigil.log.inference_log import InferenceLog
from vigil.registry.store import Registry
from vigil.settings import get_settings

pytestmark = pytest.mark.integration


def test_a_regressors_shadow_is_logged_and_judged(tmp_path):
    home = tmp_path / "home"
    settings = get_settings(home=home, database_url=None)
    registry = Registry(settings)
    production = save_regressor(registry, depth=None)
    registry.promote(production)
    candidate = save_regressor(registry, depth=2, seed=1)
    rows, labels = diabetes_rows()
    bodies = [{"instances": rows[i : i + 2]} for i in range(0, 80, 2)]

    with start_service(home, free_port(), {"VIGIL_WORKERS": "2"}) as svc:
        before = answers(svc.url, bodies)
        doc = json.loads(before[0])
        assert "probabilities" not in doc and isinstance(doc["predictions"][0], float)
        run_cli(home, "shadow", candidate)
        wait_following(svc, candidate, "shadow")
        during = answers(svc.url, bodies)
        assert [without_ids(a) for a in during] == [without_ids(b) for b in before]

        log = InferenceLog.from_settings(settings)
        try:
            assert wait_scored(log, candidate, 80) == 80
            feedback = [
                {"prediction_id": pid, "label": labels[i * 2 + j]}
                for i, a in enumerate(during)
                for j, pid in enumerate(json.loads(a)["prediction_ids"])
            ]
            r = httpx.post(f"{svc.url}/feedback", json={"labels": feedback}, timeout=30)
            assert r.status_code == 200 and r.json()["accepted"] == 80

            checker = Checker(settings, report=False, log=log)
            verdict = checker.check().payload["candidate"]
        finally:
            log.close()
    assert verdict["model_version"] == candidate and verdict["mode"] == "shadow"
    assert verdict["rows"] == verdict["labeled_rows"] == 80
    assert verdict["agreement_kind"] == "mean_absolute_difference" and verdict["agreement"] > 0
    assert verdict["prediction_drift"]["method"] == "ks"
    for who in ("production", "candidate"):
        assert {"mae", "rmse", "r2"} <= set(verdict["quality"][who])
    assert verdict["test"]["method"] == "wilcoxon_signed_rank"
    assert verdict["better"] is None  # 80 labeled rows: below VIGIL_CANDIDATE_MIN_LABELED_ROWS
