"""Registering a model trained elsewhere: the two ways a user hands one over (skops, joblib),
the Python API, and every refusal (exit 2, one line, nothing saved)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import Ran, run_command
from tests.support.user_models import (
    CUSTOM_MODULE,
    RaisingClassifier,
    custom_transformer_model,
    hgb_classifier,
    ridge_regressor,
    save_joblib,
    save_skops,
)
from training.onnx_export import TOLERANCE
from vigil.onnx_model import ARTIFACT, OnnxModel
from vigil.registry import PIPELINE, SKOPS_PIPELINE, MissingModelCode, Registry
from vigil.schema import to_frame
from vigil.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]


def register_cli(home: Path, *args: str) -> Ran:
    return run_command("training.register", *args, home=home)


def register_process(home: Path, *args: str, pythonpath: str = "") -> subprocess.CompletedProcess:
    """The real entry point, for the tests where what a fresh interpreter can import matters
    (the user's own module, on ``pythonpath`` or not). No MLflow tracking: creating its
    database would take most of the run."""
    env = {
        "VIGIL_HOME": str(home),
        "VIGIL_MLFLOW_TRACKING_URI": "off",
        "BENTOML_DO_NOT_TRACK": "true",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": pythonpath,
    }
    return subprocess.run(
        [sys.executable, "-m", "training.register", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def args_for(user, model_path: Path, data_dir: Path, *extra: str) -> list[str]:
    reference, holdout = user.write_data(data_dir)
    return [
        "--model", str(model_path), "--reference", str(reference), "--holdout", str(holdout),
        "--target", user.target, *extra,
    ]  # fmt: skip


def assert_refused(result: Ran | subprocess.CompletedProcess, home: Path, *words: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    assert not (home / "bentoml" / "models").exists() or not any(
        (home / "bentoml" / "models").rglob("contract.json")
    )


def assert_onnx_agrees(bundle, frame) -> None:
    task, contract = bundle.task, bundle.contract
    assert contract["inference"]["runtime"] == "onnx", contract["inference"]
    classes = contract["onnx"]["classes"]
    model = OnnxModel(bundle.artifact_bytes(ARTIFACT), bundle.schema, classes)
    expected = task.outputs(task.raw(bundle.pipeline, frame), classes)
    got = task.outputs(model.predict_raw_frame(frame), classes)
    worst, mismatches = task.disagreement(expected, got)
    print(
        f"ONNX registered {task.name}: rows {len(frame)} max|Δ| {worst:.3g} mismatches {mismatches}"
    )
    assert mismatches == 0 and worst <= TOLERANCE


def test_hist_gradient_boosting_pipeline_saved_with_skops(tmp_path):
    user = hgb_classifier()
    path = save_skops(user.model, tmp_path / "churn.skops")
    home = tmp_path / "home"
    result = register_cli(home, *args_for(user, path, tmp_path / "data", "--promote"))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["task"] == "classification" and out["promoted"] is True
    assert out["metrics"]["accuracy"] > 0.8

    settings = get_settings(home=home)
    bundle = Registry(settings).load_production()
    assert bundle.tag == out["model_tag"]
    # Stored as skops, never pickled: serving loads it with the trusted types recorded.
    assert SKOPS_PIPELINE in bundle.artifacts and PIPELINE not in bundle.artifacts
    assert bundle.artifact_bytes(SKOPS_PIPELINE) == path.read_bytes()
    contract = bundle.contract
    assert contract["model_format"] == "skops"
    registered = contract["lineage"]["registered"]
    assert registered["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert registered["file"] == "churn.skops"
    assert contract["params"]["estimator_class"] == "HistGradientBoostingClassifier"
    schema = bundle.schema
    assert schema["plan"].kind == "categorical" and schema.classes == (0, 1)
    assert schema.names == ["tenure", "spend", "plan"]  # the reference's order
    # ONNX agreement on every row of both data sets, plus unseen and missing plans.
    frame = to_frame(schema, user.reference.drop(columns=user.target))
    frame = frame._append(to_frame(schema, user.holdout.drop(columns=user.target)))
    frame.iloc[::7, frame.columns.get_loc("plan")] = "enterprise"
    frame.iloc[::11, frame.columns.get_loc("plan")] = np.nan
    assert_onnx_agrees(bundle, frame.reset_index(drop=True))

    listed = run_command("training.models", "show", bundle.tag, home=home)
    assert "task:           classification" in listed.stdout


def test_ridge_saved_with_joblib_needs_trust_pickle(tmp_path):
    user = ridge_regressor()
    path = save_joblib(user.model, tmp_path / "ridge.joblib")
    home = tmp_path / "home"
    refused = register_cli(home, *args_for(user, path, tmp_path / "data", "--promote"))
    assert_refused(refused, home, "--trust-pickle", "runs")

    result = register_cli(
        home, *args_for(user, path, tmp_path / "data", "--promote", "--trust-pickle")
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["task"] == "regression" and out["promoted"] is True
    assert set(out["metrics"]) == {"mae", "rmse", "r2", "mean_error"}
    bundle = Registry(get_settings(home=home)).load_production()
    assert PIPELINE in bundle.artifacts and bundle.contract["model_format"] == "joblib"
    assert bundle.schema.classes == ()
    assert len(bundle.contract["prediction_buckets"]) >= 5
    frame = to_frame(bundle.schema, user.reference.drop(columns=user.target))
    assert_onnx_agrees(bundle, frame)


def test_register_model_in_python(tmp_path):
    from training import register_model

    user = hgb_classifier(seed=1)
    settings = get_settings(home=tmp_path)
    ref_x, ref_y = user.split(user.reference)
    hold_x, hold_y = user.split(user.holdout)
    out = register_model(user.model, ref_x, ref_y, hold_x, hold_y, promote=True, settings=settings)
    assert out["promoted"] and out["task"] == "classification" and "reason" not in out
    bundle = Registry(settings).load_production()
    assert bundle.contract["model_format"] == "skops"
    np.testing.assert_array_equal(
        bundle.pipeline.predict_proba(ref_x), user.model.predict_proba(ref_x)
    )
    # The same model again is not worse than itself; a gate it cannot pass keeps it out.
    again = register_model(user.model, ref_x, ref_y, hold_x, hold_y, settings=settings)
    assert not again["promoted"] and "--promote" in again["reason"]


def forget_user_module(monkeypatch) -> None:
    """This process as a fresh interpreter sees it: the user's module, imported to build the
    model, is no longer importable (its folder left ``sys.path`` after the build)."""
    monkeypatch.delitem(sys.modules, CUSTOM_MODULE)


@pytest.mark.integration
def test_untrusted_skops_type_is_refused_unless_trusted(tmp_path, monkeypatch):
    user, code = custom_transformer_model(tmp_path)
    path = save_skops(user.model, tmp_path / "custom.skops")
    home = tmp_path / "home"
    forget_user_module(monkeypatch)
    refused = register_cli(home, *args_for(user, path, tmp_path / "data"))
    assert_refused(refused, home, f"{CUSTOM_MODULE}.Doubler", "not trusted", "--trust")
    # Trusted but not importable here: one line naming the module.
    missing = register_cli(
        home, *args_for(user, path, tmp_path / "data", "--trust", f"{CUSTOM_MODULE}.Doubler")
    )
    assert_refused(missing, home, f"'{CUSTOM_MODULE}'", "PYTHONPATH")
    # With the user's code importable, it registers.
    ok = register_process(
        home,
        *args_for(user, path, tmp_path / "data", "--trust", f"{CUSTOM_MODULE}.Doubler"),
        pythonpath=str(code),
    )
    assert ok.returncode == 0, ok.stderr
    tag = json.loads(ok.stdout)["model_tag"]
    bundle = Registry(get_settings(home=home)).load(tag)
    assert f"{CUSTOM_MODULE}.Doubler" in bundle.contract["skops_trusted"]


@pytest.mark.integration
def test_pickle_with_a_missing_module_names_it(tmp_path):
    user, _ = custom_transformer_model(tmp_path)
    path = save_joblib(user.model, tmp_path / "custom.pkl")
    home = tmp_path / "home"
    result = register_process(home, *args_for(user, path, tmp_path / "data", "--trust-pickle"))
    assert_refused(result, home, f"'{CUSTOM_MODULE}'")


@pytest.mark.integration
def test_serving_side_load_names_the_missing_module(tmp_path):
    """A registered model whose module is gone by serving time: one clear error type."""
    user, _ = custom_transformer_model(tmp_path)
    path = save_skops(user.model, tmp_path / "custom.skops")
    home = tmp_path / "home"
    trust = ("--trust", f"{CUSTOM_MODULE}.Doubler")
    # Registered here, where the user's module is imported; loaded by a fresh interpreter.
    ok = register_cli(home, *args_for(user, path, tmp_path / "d", *trust))
    assert ok.returncode == 0, ok.stderr
    probe = (
        "import sys\nfrom vigil.registry import Registry, MissingModelCode\n"
        "from vigil.settings import get_settings\n"
        f"b = Registry(get_settings()).load({json.loads(ok.stdout)['model_tag']!r})\n"
        "try:\n    b.pipeline\nexcept MissingModelCode as e:\n    print(e); sys.exit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT,
        env={"VIGIL_HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert f"'{CUSTOM_MODULE}'" in result.stdout
    assert issubclass(MissingModelCode, ImportError)


def test_feature_mismatch_names_missing_and_extra_columns(tmp_path):
    user = hgb_classifier()
    path = save_skops(user.model, tmp_path / "churn.skops")
    user.reference = user.reference.rename(columns={"spend": "monthly_spend"})
    user.holdout = user.holdout.rename(columns={"spend": "monthly_spend"})
    home = tmp_path / "home"
    result = register_cli(home, *args_for(user, path, tmp_path / "data"))
    assert_refused(result, home, "missing ['spend']", "extra ['monthly_spend']")


def test_a_model_that_raises_is_refused(tmp_path):
    user = ridge_regressor()
    x, y = user.split(user.reference)
    broken = RaisingClassifier().fit(x, (y > y.median()).astype(int))
    path = save_joblib(broken, tmp_path / "broken.joblib")
    user.reference = user.reference.assign(progression=(y > y.median()).astype(int))
    user.holdout = user.holdout.assign(progression=1)
    home = tmp_path / "home"
    result = register_cli(home, *args_for(user, path, tmp_path / "data", "--trust-pickle"))
    assert_refused(result, home, "cannot answer on the reference rows", "broken on purpose")


def test_other_refusals(tmp_path, monkeypatch):
    user = ridge_regressor()
    home = tmp_path / "home"
    text = tmp_path / "model.txt"
    text.write_text("x")
    assert_refused(register_cli(home, *args_for(user, text, tmp_path / "d")), home, ".skops")
    path = save_joblib(user.model, tmp_path / "ridge.pkl")
    missing_target = args_for(user, path, tmp_path / "d", "--trust-pickle")
    missing_target[missing_target.index("--target") + 1] = "nope"
    assert_refused(register_cli(home, *missing_target), home, "'nope' not found")
    from training import model_file

    monkeypatch.setattr(model_file, "MAX_MODEL_BYTES", 10)
    with pytest.raises(model_file.BadModel, match="more than 10"):
        model_file.load_model_file(path, trust_pickle=True)
    garbage = tmp_path / "garbage.skops"
    garbage.write_bytes(b"not a zip")
    assert_refused(register_cli(home, *args_for(user, garbage, tmp_path / "d")), home, "skops")


def test_the_bytes_checked_are_the_bytes_stored(tmp_path, monkeypatch):
    """The file is swapped for another model right after it was type-checked and loaded:
    what the registry stores and hashes is still the file as it was checked, read once."""
    import typer
    from typer.testing import CliRunner

    import vigil.registry.store
    from training import register

    user = hgb_classifier()
    path = save_skops(user.model, tmp_path / "churn.skops")
    checked = path.read_bytes()
    swap = save_skops(hgb_classifier(seed=5).model, tmp_path / "swap.skops").read_bytes()
    assert swap != checked
    loaded = vigil.registry.store.load_model_bytes

    def load_then_swap(data, *args):
        model = loaded(data, *args)
        path.write_bytes(swap)  # what a second read of the path would now see
        return model

    monkeypatch.setattr(vigil.registry.store, "load_model_bytes", load_then_swap)
    home = tmp_path / "home"
    monkeypatch.setenv("VIGIL_HOME", str(home))
    monkeypatch.delenv("VIGIL_DATABASE_URL", raising=False)
    app = typer.Typer()
    app.command()(register.main)
    result = CliRunner().invoke(app, args_for(user, path, tmp_path / "data"))
    assert result.exit_code == 0, result.output
    bundle = Registry(get_settings(home=home)).load(json.loads(result.stdout)["model_tag"])
    assert bundle.artifact_bytes(SKOPS_PIPELINE) == checked
    registered = bundle.contract["lineage"]["registered"]
    assert registered["sha256"] == hashlib.sha256(checked).hexdigest()
