"""A regressor's estimated MAE and RMSE (direct loss estimation) through training and the check,
on the bundled diabetes data."""

from __future__ import annotations

import time

import pytest

from monitoring.check import Checker
from vigil.log.inference_log import InferenceLog, LogRecord
from vigil.log.prediction_ids import new_request_id
from vigil.registry.store import Registry
from vigil.settings import get_settings


@pytest.fixture
def regressor(vigil_home):
    from sklearn.datasets import load_diabetes

    from training.data import load
    from training.train import train

    settings = get_settings()
    outcome = train(settings, load(None, None, dataset="diabetes"), n_estimators=30, promote=True)
    assert outcome.promoted, outcome
    log = InferenceLog.from_settings(settings)
    log.create_schema()
    data = load_diabetes(as_frame=True).frame
    yield settings, log, Registry(settings).load_production(), data
    log.close()


def _log(log, bundle, rows) -> list[str]:
    features = rows.drop(columns="target")
    predictions = bundle.pipeline.predict(features).tolist()
    record = LogRecord(
        request_id=new_request_id(time.time()),
        model_version=bundle.tag,
        created_at=time.time(),
        instances=features.to_dict("records"),
        predictions=predictions,
        probabilities={},
    )
    log.write([record])
    return record.prediction_ids


def test_regressor_check_estimates_mae_and_rmse_and_their_error(regressor):
    settings, log, bundle, data = regressor
    assert "quality_estimator.joblib" in bundle.artifacts
    rows = data.sample(n=300, replace=True, random_state=1).reset_index(drop=True)
    ids = _log(log, bundle, rows)
    result = Checker(settings, report=False, log=log).check()
    estimated = result.payload["estimated_quality"]
    assert set(estimated) == {"mae", "mae_se", "rmse", "rmse_se"}
    assert 0 < estimated["mae"] < estimated["rmse"] < 3 * bundle.metrics["rmse"]
    assert estimated["mae_se"] > 0 and estimated["rmse_se"] > 0
    log.add_feedback(zip(ids, rows["target"].tolist(), strict=True))
    result = Checker(settings, report=False, log=log).check()
    errors = result.payload["estimate_error"]
    quality = result.payload["quality"]
    assert set(errors) == {"mae", "rmse"}
    assert errors["mae"] == pytest.approx(estimated["mae"] - quality["mae"], abs=1e-4)
    assert set(result.payload["data_quality"]) == set(bundle.schema.names)
