"""Retraining on recent labeled traffic, promotion by the same holdout, and rollback."""

from __future__ import annotations

import json
import time

import pytest
import typer
from sklearn.datasets import load_breast_cancer

from tests.support.cli import run_command
from training.pipeline import score
from training.retrain import NotEnoughLabels, retrain
from vigil.log.inference_log import InferenceLog, LogRecord
from vigil.log.prediction_ids import new_request_id
from vigil.registry.store import Registry
from vigil.schema import to_frame
from vigil.settings import get_settings

SHIFTED = ["mean radius", "mean texture", "mean area", "worst radius", "worst area"]


def drifted_traffic(n: int, seed: int = 0):
    """Inputs moved far in five features, where the label now means the opposite."""
    data = load_breast_cancer(as_frame=True).frame
    rows = data.sample(n=n, replace=True, random_state=seed).reset_index(drop=True)
    for name in SHIFTED:
        rows[name] = rows[name] + 3 * data[name].std()
    labels = 1 - rows.pop("target")
    return rows, labels


def log_with_labels(settings, version: str, rows, labels, *, regression=False) -> None:
    log = InferenceLog.from_settings(settings)
    log.create_schema()
    n = len(rows)
    logged = LogRecord(
        request_id=new_request_id(),
        model_version=version,
        created_at=time.time(),
        instances=rows.to_dict(orient="records"),
        predictions=[0.0 if regression else 0] * n,
        probabilities={} if regression else {"0": [1.0] * n, "1": [0.0] * n},
    )
    log.write([logged])
    cast = float if regression else int
    log.add_feedback([(i, cast(y)) for i, y in zip(logged.prediction_ids, labels, strict=True)])
    log.close()


def drifted_diabetes(n: int, seed: int = 0):
    """Patients with a far higher BMI than any in training, whose progression is 150 higher."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True).frame
    rows = data.sample(n=n, replace=True, random_state=seed).reset_index(drop=True)
    rows["bmi"] = rows["bmi"] + 4 * data["bmi"].std()
    return rows, rows.pop("target") + 150


def test_a_regressor_is_retrained_on_its_drifted_traffic(tmp_path, monkeypatch):
    from training.data import load
    from training.train import train

    monkeypatch.setenv("VIGIL_HOME", str(tmp_path))
    settings = get_settings()
    registry = Registry(settings)
    first = train(settings, load(None, None, dataset="diabetes"), n_estimators=20, promote=True)
    parent = registry.load_production()
    assert parent.tag == first.model_tag and parent.task.name == "regression"
    rows, labels = drifted_diabetes(600)
    log_with_labels(settings, parent.tag, rows, labels, regression=True)

    outcome = retrain(settings, min_labels=100, n_estimators=20)
    assert outcome.task == "regression" and set(outcome.metrics) == set(parent.metrics)
    assert outcome.promoted, outcome.reason
    child = registry.load_production()
    assert child.task.name == "regression" and child.schema.classes == ()
    assert child.contract["params"]["estimator"] == "random_forest"
    assert child.contract["lineage"]["parent"] == parent.tag
    fresh, truth = drifted_diabetes(300, seed=9)
    task = child.task
    before = score(parent.pipeline, to_frame(parent.schema, fresh), truth, task)
    after = score(child.pipeline, to_frame(child.schema, fresh), truth, task)
    assert after["rmse"] < 0.7 * before["rmse"], (before, after)


def test_a_worse_regressor_candidate_is_not_promoted(tmp_path, monkeypatch):
    from sklearn.datasets import load_diabetes

    from training.data import load
    from training.train import train

    monkeypatch.setenv("VIGIL_HOME", str(tmp_path))
    settings = get_settings()
    train(settings, load(None, None, dataset="diabetes"), n_estimators=20, promote=True)
    parent = Registry(settings).load_production()
    data = load_diabetes(as_frame=True).frame.sample(n=300, random_state=1)
    log_with_labels(settings, parent.tag, data, data.pop("target"), regression=True)
    outcome = retrain(settings, min_labels=100, n_estimators=1)
    assert not outcome.promoted and "rmse" in (outcome.reason or ""), outcome
    assert Registry(settings).production_tag() == parent.tag


def test_retrained_model_wins_on_the_drifted_data(trained_home):
    settings = get_settings()
    registry = Registry(settings)
    parent = registry.load_production()
    rows, labels = drifted_traffic(800)
    log_with_labels(settings, parent.tag, rows, labels)

    outcome = retrain(settings, window_rows=5000, min_labels=100)
    assert outcome.promoted, outcome.reason
    child = registry.load_production()
    assert child.tag == outcome.model_tag != parent.tag

    fresh_rows, fresh_labels = drifted_traffic(400, seed=99)  # unseen drifted data
    before = score(parent.pipeline, to_frame(parent.schema, fresh_rows), fresh_labels)
    after = score(child.pipeline, to_frame(child.schema, fresh_rows), fresh_labels)
    assert after["accuracy"] > before["accuracy"] + 0.3, (before, after)

    lineage = child.contract["lineage"]
    assert lineage["parent"] == parent.tag
    assert lineage["recent_rows"] == 800 and lineage["reference_rows"] == 455
    assert len(lineage["recent_sha256"]) == 64
    assert lineage["recent_window"]["model_versions"] == [parent.tag]

    assert registry.rollback() == parent.tag
    assert registry.production_tag() == parent.tag


def test_no_drift_means_no_promotion_of_a_worse_candidate(trained_home):
    settings = get_settings()
    parent = Registry(settings).load_production()
    data = load_breast_cancer(as_frame=True).frame.sample(n=300, random_state=1)
    labels = data.pop("target")
    log_with_labels(settings, parent.tag, data, labels)
    # A one-tree candidate cannot beat the production forest on the same holdout.
    outcome = retrain(settings, min_labels=100, n_estimators=1)
    assert not outcome.promoted
    assert Registry(settings).production_tag() == parent.tag


def test_labels_alone_cannot_choose_the_holdout(trained_home):
    """Feedback that lies (the true label flipped, on ordinary traffic) makes a candidate that
    wins on the recent holdout, which the liar labeled too; the trusted holdout stops it."""
    settings = get_settings()
    parent = Registry(settings).load_production()
    assert len(parent.contract["holdout"]["rows"]) == 114  # the training split's 20%
    data = load_breast_cancer(as_frame=True).frame.sample(n=2000, replace=True, random_state=3)
    lies = 1 - data.pop("target")
    log_with_labels(settings, parent.tag, data, lies)

    outcome = retrain(settings, min_labels=100)
    assert outcome.gate_passed and not outcome.promoted
    assert "on the trusted holdout" in outcome.reason, outcome.reason
    assert Registry(settings).production_tag() == parent.tag
    child = Registry(settings).load(outcome.model_tag)
    assert child.contract["holdout"] == parent.contract["holdout"]  # passed on, not replaced


def test_a_model_without_a_trusted_holdout_is_not_retrained(trained_home):
    from training.retrain import NoTrustedHoldout

    settings = get_settings()
    registry = Registry(settings)
    bundle = registry.load_production()
    contract = {k: v for k, v in bundle.contract.items() if k not in ("holdout", "tag")}
    registry.promote(registry.save(bundle.pipeline, contract, bundle.reference))
    with pytest.raises(NoTrustedHoldout, match="make train"):
        retrain(settings, min_labels=1)


def test_a_rollback_made_while_retraining_is_not_undone(trained_home, monkeypatch):
    """The parent is b; while the candidate trains, an operator rolls back to a. The
    candidate (trained from b, compared with b) is saved but not promoted; the outcome names
    who changed production, and the CLI would exit 3."""
    import training.retrain as retrain_module
    from training.train import exit_for

    settings = get_settings()
    registry = Registry(settings)
    a = registry.production_tag()
    bundle = registry.load(a)
    b = registry.save(bundle.pipeline, bundle.contract, bundle.reference)
    registry.promote(b)
    rows, labels = drifted_traffic(800)
    log_with_labels(settings, b, rows, labels)
    fit = retrain_module.fit_and_decide

    def fit_then_operator_rolls_back(*args, **kwargs):
        outcome = fit(*args, **kwargs)
        Registry(settings).rollback(by="ops@test")
        return outcome

    monkeypatch.setattr(retrain_module, "fit_and_decide", fit_then_operator_rolls_back)
    outcome = retrain(settings, window_rows=5000, min_labels=100)
    assert not outcome.promoted and outcome.conflict
    assert f"production is {a}, not {b}" in outcome.reason and "ops@test" in outcome.reason
    assert registry.production_tag() == a
    with pytest.raises(typer.Exit) as exited:
        exit_for(outcome)
    assert exited.value.exit_code == 3


def test_too_few_labels_is_refused(trained_home):
    with pytest.raises(NotEnoughLabels, match="at least 50"):
        retrain(get_settings(), min_labels=50)


def test_promote_cli_switches_and_rolls_back(trained_home):
    settings = get_settings()
    registry = Registry(settings)
    first = registry.production_tag()
    bundle = registry.load(first)
    second = registry.save(bundle.pipeline, bundle.contract, bundle.reference)

    def cli(*args):
        return run_command("training.promote", *args, home=trained_home)

    out = cli(second)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"production": second, "previous": first}
    out = cli("--rollback")
    assert json.loads(out.stdout)["production"] == first
    conflict = cli(second, "--expect", second)  # production is first again
    assert conflict.returncode == 3, conflict.stderr
    assert f"production is {first}, not {second}" in conflict.stderr
    assert "(rollback, revision" in conflict.stderr
    assert cli(second, "--expect", first).returncode == 0
    assert cli("--rollback", "--expect", second).returncode == 0
    bad = cli("vigil-model:nope")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert registry.production_tag() == first
