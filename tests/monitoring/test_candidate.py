"""The monitor's verdict on a candidate, for both tasks: on candidates generated so that the
truth is known (truly better, truly worse), the verdict is right once enough labels arrive and
undecided before; and end to end, logged answers and shadow rows give the check's
``candidate`` JSON, its metrics and the stored verdict that ``promote --if-better`` reads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from monitoring.candidate import judge
from vigil.tasks import CLASSIFIER, REGRESSOR

ALPHA = 0.01
MIN_LABELED = 200
STEP = 50


def classifier_pairs(n: int, p_prod: float, p_cand: float, seed: int) -> pd.DataFrame:
    """Binary labels; each model right on a row with its own probability, independently."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    prod = np.where(rng.random(n) < p_prod, truth, 1 - truth)
    cand = np.where(rng.random(n) < p_cand, truth, 1 - truth)

    def proba(pred):
        conf = rng.uniform(0.55, 0.95, n)
        p1 = np.where(pred == 1, conf, 1 - conf)
        return [{"0": round(1 - a, 6), "1": round(a, 6)} for a in p1]

    return _frame(truth.tolist(), prod.tolist(), cand.tolist(), proba(prod), proba(cand))


def regressor_pairs(n: int, sd_prod: float, sd_cand: float, seed: int) -> pd.DataFrame:
    """Labels around 150; each model's error normal with its own spread."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(150, 50, n)
    prod = truth + rng.normal(0, sd_prod, n)
    cand = truth + rng.normal(0, sd_cand, n)
    empty = [{}] * n
    return _frame(truth.tolist(), prod.tolist(), cand.tolist(), empty, empty)


def _frame(truth, prod, cand, prod_proba, cand_proba) -> pd.DataFrame:
    n = len(truth)
    return pd.DataFrame(
        {
            "prediction_id": [f"{i:032x}0000" for i in range(n)],
            "answered_by": ["prod"] * n,
            "production": prod,
            "candidate": cand,
            "production_probabilities": prod_proba,
            "candidate_probabilities": cand_proba,
            "label": truth,
        }
    )


def verdicts(pairs: pd.DataFrame, task, classes) -> dict[int, bool | None]:
    """The verdict with the first n labeled rows, n = STEP, 2 STEP, ..."""
    return {
        n: judge(pairs.head(n), task, classes, alpha=ALPHA, min_labeled_rows=MIN_LABELED)["better"]
        for n in range(STEP, len(pairs) + 1, STEP)
    }


def needed(by_n: dict[int, bool | None], truth: bool) -> int | None:
    """Labeled rows from which on the verdict is ``truth`` at every step."""
    first = None
    for n, verdict in by_n.items():
        assert verdict in (truth, None), f"wrong verdict {verdict} at {n} rows"
        first = (first or n) if verdict is truth else None
    return first


CASES = {
    # task, classes, make(n, seed, better): truly better or truly worse by construction
    "classification": (
        CLASSIFIER,
        (0, 1),
        lambda n, seed, better: classifier_pairs(n, 0.80, 0.88 if better else 0.72, seed),
    ),
    "regression": (
        REGRESSOR,
        (),
        lambda n, seed, better: regressor_pairs(n, 10.0, 8.0 if better else 12.5, seed),
    ),
}


@pytest.mark.parametrize("task_name", list(CASES))
@pytest.mark.parametrize("better", [True, False], ids=["better", "worse"])
def test_the_verdict_is_right_once_enough_labels_arrive_and_undecided_before(task_name, better):
    task, classes, make = CASES[task_name]
    pairs = make(3000, 11 if better else 12, better)
    by_n = verdicts(pairs, task, classes)
    # Below the configured minimum of labeled rows: undecided, whatever the test says.
    assert all(by_n[n] is None for n in by_n if n < MIN_LABELED)
    rows = needed(by_n, better)
    assert rows is not None, by_n
    print(f"{task_name} {'better' if better else 'worse'}: right from {rows} labeled rows")
    full = judge(pairs, task, classes, alpha=ALPHA, min_labeled_rows=MIN_LABELED)
    assert full["labeled_rows"] == full["rows"] == 3000
    assert full["quality"]["candidate"] and full["quality"]["production"]
    assert full["test"]["method"] in ("mcnemar_midp", "wilcoxon_signed_rank")


@pytest.mark.parametrize("task_name", list(CASES))
def test_two_equally_good_models_stay_undecided(task_name):
    """Same quality by construction: at α = 0.01 a false verdict is rare (checked on 20
    independent draws: at most one)."""
    task, classes, _ = CASES[task_name]
    wrong = 0
    for seed in range(20):
        if task_name == "classification":
            pairs = classifier_pairs(1000, 0.8, 0.8, seed)
        else:
            pairs = regressor_pairs(1000, 10.0, 10.0, seed)
        verdict = judge(pairs, task, classes, alpha=ALPHA, min_labeled_rows=MIN_LABELED)
        wrong += verdict["better"] is not None
    assert wrong <= 1


def test_agreement_and_prediction_drift_come_from_unlabeled_rows_too():
    pairs = classifier_pairs(500, 0.9, 0.9, 5).assign(label=None)
    verdict = judge(pairs, CLASSIFIER, (0, 1), alpha=ALPHA, min_labeled_rows=MIN_LABELED)
    assert verdict["labeled_rows"] == 0 and verdict["better"] is None
    assert 0.7 < verdict["agreement"] < 0.9  # both right 81 %, both wrong 1 %
    assert verdict["prediction_drift"]["method"] == "chisquare"
    reg = regressor_pairs(500, 10.0, 10.0, 5)
    mad = judge(reg, REGRESSOR, (), alpha=ALPHA, min_labeled_rows=MIN_LABELED)["agreement"]
    assert 10 < mad < 20  # |e1 - e2| with e ~ N(0, 10): mean 2 * 10 / sqrt(pi) ≈ 11.3


def test_a_check_reports_a_shadow_exports_it_and_stores_the_verdict(production):
    """End to end on SQLite: answers in the log, the shadow's predictions beside them, labels;
    the check's ``candidate`` JSON, the monitor's gauges, and the verdict in the registry."""
    from monitoring.check import Checker
    from monitoring.metrics import MonitorMetrics
    from tests.support.prom import total
    from vigil.log.inference_log import LogRecord
    from vigil.log.prediction_ids import new_request_ids, prediction_id
    from vigil.log.shadow import ShadowLog, ShadowRecord
    from vigil.registry.candidates import Candidates
    from vigil.registry.store import Registry

    settings, log, bundle = production
    registry = Registry(settings)
    candidate = registry.save(bundle.pipeline, bundle.contract, bundle.reference)
    Candidates(registry).start(candidate, "shadow")

    n = 600
    pairs = classifier_pairs(n, 0.75, 0.9, 21)
    rows = bundle.reference[bundle.schema.names]
    ids = new_request_ids(n)
    records, shadows = [], []
    for i, rid in enumerate(ids):
        instance = rows.iloc[[i % len(rows)]].to_dict(orient="records")
        prod, cand = int(pairs.iloc[i]["production"]), int(pairs.iloc[i]["candidate"])
        pp, cp = pairs.iloc[i]["production_probabilities"], pairs.iloc[i]["candidate_probabilities"]
        records.append(LogRecord(rid, bundle.tag, 1.0 + i, instance, [prod],
                                 {k: [v] for k, v in pp.items()}))  # fmt: skip
        shadows.append(ShadowRecord(rid, candidate, 1.0 + i, [cand],
                                    {k: [v] for k, v in cp.items()}))  # fmt: skip
    log.write(records)
    ShadowLog(log).write(shadows)
    log.add_feedback(
        [(prediction_id(rid, 0), int(pairs.iloc[i]["label"])) for i, rid in enumerate(ids)]
    )

    result = Checker(settings, report=False, log=log).check()
    doc = result.payload["candidate"]
    json.dumps(doc)  # JSON as printed
    assert doc["model_version"] == candidate and doc["mode"] == "shadow"
    assert doc["rows"] == doc["labeled_rows"] == n
    assert doc["better"] is True
    assert set(doc["quality"]) == {"production", "candidate"}

    metrics = MonitorMetrics(CollectorRegistry(), process=False)
    metrics.record_check(result.payload, result.reference_metrics)
    from prometheus_client import generate_latest

    text = generate_latest(metrics.registry).decode()
    pair = {"model_version": bundle.tag, "candidate_version": candidate}
    assert total(text, "vigil_candidate_better", **pair) == 1
    assert total(text, "vigil_candidate_agreement", **pair) == pytest.approx(doc["agreement"])
    quality = doc["quality"]["candidate"]["accuracy"]
    assert total(text, "vigil_model_quality", model_version=candidate, metric="accuracy") == quality

    stored = Candidates(registry).latest_verdict(candidate)
    assert stored.better is True and stored.labeled_rows == n

    # Stopped: the next check has no candidate, and its series are gone.
    Candidates(registry).stop("shadow")
    result = Checker(settings, report=False, log=log).check()
    assert "candidate" not in result.payload
    metrics.record_check(result.payload, result.reference_metrics)
    text = generate_latest(metrics.registry).decode()
    assert "vigil_candidate_better{" not in text

    # Retention deletes shadow rows as it deletes requests.
    assert ShadowLog(log).prune(1.0 + n / 2) == n // 2
    assert ShadowLog(log).count(candidate) == n - n // 2
