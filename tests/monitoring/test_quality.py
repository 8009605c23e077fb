"""Live quality: labels joined to logged predictions, scored exactly as scikit-learn scores them,
and label drift against the training labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from monitoring.check import Checker
from monitoring.quality import live_quality
from tests.monitoring.generators import breast_cancer_rows, fill_log
from vigil.log.inference_log import InferenceLog
from vigil.registry.store import LABEL_COLUMN, Registry
from vigil.schema import to_frame
from vigil.settings import get_settings


@pytest.fixture
def labeled(trained_home):
    settings = get_settings()
    bundle = Registry(settings).load_production()
    log = InferenceLog.from_settings(settings)
    log.create_schema()
    yield settings, bundle, log
    log.close()


def _label(log, bundle, rows, labels):
    ids = fill_log(log, bundle, rows)
    log.add_feedback(list(zip(ids, (int(v) for v in labels), strict=True)))
    return ids


def test_quality_equals_scikit_learn_on_the_same_rows(labeled):
    settings, bundle, log = labeled
    rows = breast_cancer_rows(300, seed=3, with_target=True)
    truth = rows.pop("target").to_numpy()
    # Some ground truth is wrong on purpose, so the figures are not all perfect.
    truth[::7] = 1 - truth[::7]
    _label(log, bundle, rows, truth)
    fill_log(log, bundle, breast_cancer_rows(100, seed=4))  # never labeled

    quality = live_quality(log, bundle.tag, bundle.schema, n=1000)

    proba = bundle.pipeline.predict_proba(to_frame(bundle.schema, rows))
    proba = np.round(proba, 6)
    predicted = bundle.pipeline.classes_[proba.argmax(axis=1)]
    expected = {
        "accuracy": accuracy_score(truth, predicted),
        "f1": f1_score(truth, predicted),
        "precision": precision_score(truth, predicted),
        "recall": recall_score(truth, predicted),
        "roc_auc": roc_auc_score(truth, proba[:, 1]),
        "log_loss": log_loss(truth, proba / proba.sum(axis=1, keepdims=True)),
    }
    for name, value in expected.items():
        assert quality[name] == pytest.approx(value, abs=1e-6), name
    assert quality["labeled_rows"] == 300
    assert quality["labeled_fraction"] == pytest.approx(300 / 400)


def test_quality_window_is_the_newest_labeled_rows(labeled):
    settings, bundle, log = labeled
    old = breast_cancer_rows(200, seed=5, with_target=True)
    _label(log, bundle, old.drop(columns="target"), 1 - old["target"])  # all wrong
    new = breast_cancer_rows(100, seed=6, with_target=True)
    _label(log, bundle, new.drop(columns="target"), new["target"])
    quality = live_quality(log, bundle.tag, bundle.schema, n=100)
    assert quality["labeled_rows"] == 100 and quality["accuracy"] > 0.9


def test_label_drift_is_flagged_when_the_class_mix_moves(labeled):
    settings, bundle, log = labeled
    reference_labels = bundle.reference[LABEL_COLUMN]
    rows = breast_cancer_rows(400, seed=8, with_target=True)
    steady = live_quality(log, bundle.tag, bundle.schema, 1000, reference_labels=reference_labels)
    assert steady is None  # no labels yet
    _label(log, bundle, rows.drop(columns="target"), rows["target"])
    steady = live_quality(log, bundle.tag, bundle.schema, 1000, reference_labels=reference_labels)
    assert steady["label_drift"]["drifted"] is False

    _label(log, bundle, rows.drop(columns="target"), np.zeros(len(rows), dtype=int))
    moved = live_quality(log, bundle.tag, bundle.schema, 1000, reference_labels=reference_labels)
    assert moved["label_drift"]["method"] == "chisquare"
    assert moved["label_drift"]["score"] < 1e-6 and moved["label_drift"]["drifted"] is True


def test_check_json_carries_quality_with_label_drift(labeled):
    settings, bundle, log = labeled
    rows = breast_cancer_rows(200, seed=9, with_target=True)
    _label(log, bundle, rows.drop(columns="target"), rows["target"])
    checker = Checker(settings, report=False, log=log)
    payload = checker.check().payload
    quality = payload["quality"]
    assert quality["labeled_rows"] == 200 and quality["accuracy"] > 0.9
    assert set(quality["label_drift"]) == {"method", "score_kind", "score", "threshold", "drifted"}
    assert quality["label_drift"]["threshold"] == settings.drift_alpha
