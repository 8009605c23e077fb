"""Every task and estimator of ``training.train``: the contract it saves, ONNX agreement on
every row of the data, the gate, the promotion rule, the CLI's JSON line and the registry
listing. Binary (breast_cancer), multiclass (wine) and regression (diabetes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import Ran, run_command
from training.data import load
from training.onnx_export import TOLERANCE
from training.pipeline import ESTIMATORS, classes_of
from training.policy import Gate
from training.train import train
from vigil.onnx_model import ARTIFACT, OnnxModel
from vigil.registry.store import LABEL_COLUMN, PREDICTION_COLUMN, Registry
from vigil.schema import to_frame
from vigil.settings import get_settings
from vigil.tasks import get_task

TASK_OF = {"breast_cancer": "classification", "wine": "classification", "diabetes": "regression"}
CLASSES = {"breast_cancer": (0, 1), "wine": (0, 1, 2), "diabetes": ()}
COMBOS = [(d, e) for d in TASK_OF for e in ESTIMATORS]


def run_cli(module: str, home: Path, *args: str) -> Ran:
    return run_command(module, *args, home=home)


@pytest.fixture(scope="module", params=COMBOS, ids=[f"{d}-{e}" for d, e in COMBOS])
def trained(request, tmp_path_factory):
    """One model per data set and estimator, promoted in a home of its own. Forests of 20
    trees: what is checked holds at any size, and training, export and the ONNX check of 100
    trees cost five times as much."""
    dataset_name, estimator = request.param
    settings = get_settings(home=tmp_path_factory.mktemp(f"{dataset_name}-{estimator}"))
    dataset = load(None, None, dataset=dataset_name)
    outcome = train(settings, dataset, estimator=estimator, n_estimators=20, promote=True)
    return dataset_name, estimator, dataset, outcome, Registry(settings).load(outcome.model_tag)


def test_contract_records_the_task(trained):
    name, estimator, _, outcome, bundle = trained
    task = get_task(TASK_OF[name])
    assert outcome.task == task.name and outcome.promoted, outcome
    contract = bundle.contract
    assert contract["task"] == task.name and bundle.task is task
    assert tuple(contract["metrics"]) == task.metrics
    assert contract["params"]["estimator"] == estimator
    assert bundle.schema.classes == CLASSES[name]
    reference = bundle.reference
    predictions = reference[PREDICTION_COLUMN]
    assert contract["prediction_buckets"] == task.prediction_buckets(predictions.tolist())
    if task.name == "regression":
        assert predictions.dtype == float and reference[LABEL_COLUMN].dtype == float
        assert 5 <= len(contract["prediction_buckets"]) <= 19
        assert contract["metrics"]["r2"] > 0.3
    else:
        assert set(predictions) <= {str(c) for c in CLASSES[name]}
        assert contract["prediction_buckets"] == []
        assert contract["metrics"]["accuracy"] > 0.9


def test_onnx_agrees_with_sklearn_on_every_row(trained):
    name, estimator, dataset, _, bundle = trained
    task = bundle.task
    contract = bundle.contract
    assert contract["inference"]["runtime"] == "onnx", contract["inference"]
    figures = contract["onnx"]["check"]
    assert figures["passed"] and figures["label_mismatches"] == 0
    assert figures["max_abs_diff"] <= figures["tolerance"] == TOLERANCE
    frame = to_frame(bundle.schema, dataset.features)
    classes = contract["onnx"]["classes"]
    assert classes == classes_of(bundle.pipeline)
    model = OnnxModel(bundle.artifact_bytes(ARTIFACT), bundle.schema, classes)
    expected = task.outputs(task.raw(bundle.pipeline, frame), classes)
    got = task.outputs(model.predict_raw_frame(frame), classes)
    worst, mismatches = task.disagreement(expected, got)
    print(f"ONNX {name} {estimator}: rows {len(frame)} max|Δ| {worst:.3g} mismatches {mismatches}")
    assert mismatches == 0 and worst <= TOLERANCE
    if task.name == "classification":
        assert expected.predictions == got.predictions


def test_registry_listing_shows_the_task(trained):
    name, _, _, outcome, bundle = trained
    home = Path(bundle.store.cache_dir).parent
    listed = run_cli("training.models", home, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (doc,) = json.loads(listed.stdout)["models"]
    assert doc["task"] == TASK_OF[name] and doc["production"]
    shown = run_cli("training.models", home, "show", outcome.model_tag)
    assert f"task:           {TASK_OF[name]}" in shown.stdout
    table = run_cli("training.models", home, "list")
    assert TASK_OF[name] in table.stdout and get_task(TASK_OF[name]).quality_metric in table.stdout


@pytest.mark.integration
def test_the_models_entry_point_lists_as_json(trained_home):
    listed = run_command("training.models", "list", "--json", home=trained_home, subprocess_=True)
    assert listed.returncode == 0, listed.stderr
    (doc,) = json.loads(listed.stdout)["models"]
    assert doc["task"] == "classification" and doc["production"]


@pytest.mark.parametrize("name", sorted(TASK_OF))
def test_cli_json_line_and_exit_codes(tmp_path, name):
    task = get_task(TASK_OF[name])
    ok = run_cli("training.train", tmp_path, "--dataset", name, "--promote", "--n-estimators", "20")
    assert ok.returncode == 0, ok.stderr
    (line,) = ok.stdout.strip().splitlines()
    out = json.loads(line)
    assert out["task"] == task.name and out["promoted"] is True
    assert tuple(out["metrics"]) == task.metrics
    strict = ["--min-r2", "0.99"] if task.name == "regression" else ["--min-accuracy", "1.0"]
    if name == "wine":  # a 20-tree forest classifies wine's holdout perfectly: one tree
        strict += ["--n-estimators", "1"]
    gated = run_cli("training.train", tmp_path, "--dataset", name, "--n-estimators", "5", *strict)
    out = json.loads(gated.stdout)
    if gated.returncode == 0:  # pragma: no cover - a perfect model passes any gate
        pytest.skip(f"{name} scored perfectly: {out['metrics']}")
    assert gated.returncode == 1 and "quality gate" in out["reason"], gated.stdout


def test_task_auto_and_override(tmp_path):
    forced = run_cli(
        "training.train", tmp_path, "--dataset", "diabetes", "--task", "classification"
    )
    assert forced.returncode == 2 and "classes; at most 50" in forced.stderr
    assert "Traceback" not in forced.stderr and forced.stdout == ""
    as_numbers = run_cli(
        "training.train", tmp_path, "--dataset", "wine", "--task", "regression",
        "--n-estimators", "10",
    )  # fmt: skip
    assert as_numbers.returncode == 0, as_numbers.stderr
    assert json.loads(as_numbers.stdout)["task"] == "regression"
    both = run_cli("training.train", tmp_path, "--dataset", "wine", "--data", "x.csv")
    assert both.returncode == 2 and "not both" in both.stderr
    bad = run_cli("training.train", tmp_path, "--estimator", "svm")
    assert bad.returncode == 2 and "svm" in bad.stderr


def test_text_target_cannot_be_a_regression(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,y\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(40)))
    result = run_cli("training.train", tmp_path, "--data", str(path), "--target", "y",
                     "--task", "regression")  # fmt: skip
    assert result.returncode == 2 and "cannot be a regression target" in result.stderr


def test_regression_gate_needs_r2_and_to_beat_the_mean(tmp_path):
    settings = get_settings(home=tmp_path)
    dataset = load(None, None, dataset="diabetes")
    failed = train(settings, dataset, n_estimators=10, promote=True, gate=Gate(min_r2=0.95))
    assert not failed.gate_passed and not failed.promoted
    assert failed.reason.startswith("quality gate: R²")
    bundle = Registry(settings).load(failed.model_tag)
    naive = bundle.contract["naive"]["rmse"]
    assert bundle.metrics["rmse"] < naive  # beats predicting the training mean
    task = get_task("regression")
    assert "training mean" in task.gate({"r2": 0.5, "rmse": naive}, {"rmse": naive}, 0.1)


def test_regression_promotion_compares_rmse_with_production(tmp_path):
    settings = get_settings(home=tmp_path)
    dataset = load(None, None, dataset="diabetes")
    good = train(settings, dataset, estimator="linear", promote=True)
    weak = train(settings, dataset, estimator="hist_gradient_boosting", promote=True)
    assert good.promoted and weak.gate_passed and not weak.promoted
    assert "not better than production" in weak.reason and "rmse" in weak.reason
    assert Registry(settings).production_tag() == good.model_tag
    same = train(settings, dataset, estimator="linear", promote=True)  # equal RMSE: not worse
    assert same.promoted


def test_holdout_is_stored_with_numeric_labels_for_a_regressor(tmp_path):
    settings = get_settings(home=tmp_path)
    outcome = train(settings, load(None, None, dataset="diabetes"), n_estimators=10)
    stored = Registry(settings).load(outcome.model_tag).contract["holdout"]
    assert all(isinstance(v, float) for v in stored["labels"])
    assert np.isfinite(stored["labels"]).all()
