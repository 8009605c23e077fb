"""The training CLI: reproducibility, promotion, exit codes and bad data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.cli import Ran, run_command
from training.data import load
from training.policy import Gate
from training.train import train
from vigil.registry.store import LABEL_COLUMN, PREDICTION_COLUMN, Registry
from vigil.settings import get_settings
from vigil.tasks import CLASSIFIER


def run_cli(home: Path, *args: str, subprocess_: bool = False) -> Ran:
    return run_command("training.train", *args, home=home, subprocess_=subprocess_)


def mixed_frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    label = np.where(
        x + (colour == "red") * 1.5 + rng.normal(scale=0.3, size=rows) > 0.5, "yes", "no"
    )
    frame = pd.DataFrame(
        {"x": x, "size": rng.uniform(0, 10, rows), "colour": colour, "label": label}
    )
    frame.loc[::17, "x"] = np.nan
    return frame


def test_same_data_and_seed_give_the_same_model(tmp_path):
    data = load(None, None)
    first = train(get_settings(home=tmp_path / "a"), data, seed=7)
    second = train(get_settings(home=tmp_path / "b"), data, seed=7)
    assert first.metrics == second.metrics
    a = Registry(get_settings(home=tmp_path / "a")).load(first.model_tag)
    b = Registry(get_settings(home=tmp_path / "b")).load(second.model_tag)
    features = a.reference[a.schema.names]
    np.testing.assert_array_equal(
        a.pipeline.predict_proba(features), b.pipeline.predict_proba(features)
    )
    assert a.contract["dataset_sha256"] == b.contract["dataset_sha256"]


def test_saved_model_carries_its_contract(tmp_path):
    settings = get_settings(home=tmp_path)
    outcome = train(settings, load(None, None), seed=42, promote=True)
    bundle = Registry(settings).load_production()
    assert bundle.tag == outcome.model_tag
    contract = bundle.contract
    assert tuple(contract["metrics"]) == CLASSIFIER.metrics
    assert contract["metrics"]["accuracy"] > 0.9
    assert len(contract["dataset_sha256"]) == 64
    assert contract["params"]["seed"] == 42
    assert {"scikit-learn", "pandas", "bentoml", "python"} <= set(contract["versions"])
    assert "git_commit" in contract
    schema = bundle.schema
    assert len(schema.names) == 30 and schema.classes == (0, 1)
    assert schema["mean radius"].min is not None
    reference = bundle.reference
    assert len(reference) == contract["params"]["train_rows"] == 455
    assert {LABEL_COLUMN, PREDICTION_COLUMN} <= set(reference.columns)


def test_promotion_keeps_exactly_one_production_model(tmp_path):
    settings = get_settings(home=tmp_path)
    data = load(None, None)
    first = train(settings, data, seed=1, promote=True)
    registry = Registry(settings)
    assert registry.production_tag() == first.model_tag
    unpromoted = train(settings, data, seed=2)
    assert not unpromoted.promoted and "--promote" in unpromoted.reason
    assert registry.production_tag() == first.model_tag
    again = train(settings, data, seed=1, promote=True)  # identical model: not worse
    assert again.promoted
    assert registry.production_tag() == again.model_tag
    assert registry.rollback() == first.model_tag
    assert registry.production_tag() == first.model_tag


def test_worse_model_is_saved_but_not_promoted(tmp_path):
    settings = get_settings(home=tmp_path)
    data = load(None, None)
    good = train(settings, data, seed=3, promote=True)
    weak = train(settings, data, seed=3, n_estimators=1, promote=True)
    assert not weak.promoted
    assert "not better than production" in weak.reason
    assert Registry(settings).production_tag() == good.model_tag
    assert weak.model_tag in Registry(settings).tags()


def test_gate_failure_saves_without_promoting(tmp_path):
    settings = get_settings(home=tmp_path)
    outcome = train(settings, load(None, None), promote=True, gate=Gate(min_accuracy=0.999))
    assert not outcome.promoted and not outcome.gate_passed
    assert outcome.reason.startswith("quality gate")
    assert Registry(settings).production_tag() is None


def test_cli_prints_one_json_line_and_exit_codes(tmp_path):
    ok = run_cli(tmp_path, "--promote", "--n-estimators", "20")
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["promoted"] is True and out["model_tag"].startswith("vigil-model:")
    assert "reason" not in out

    gated = run_cli(tmp_path, "--min-accuracy", "0.9999", "--n-estimators", "5")
    assert gated.returncode == 1
    out = json.loads(gated.stdout)
    assert out["promoted"] is False and "quality gate" in out["reason"]


def test_cli_trains_on_a_mixed_csv(tmp_path):
    path = tmp_path / "mixed.csv"
    mixed_frame().to_csv(path, index=False)
    result = run_cli(tmp_path / "home", "--data", str(path), "--target", "label", "--promote")
    assert result.returncode == 0, result.stderr
    bundle = Registry(get_settings(home=tmp_path / "home")).load_production()
    assert bundle.schema["colour"].kind == "categorical"
    assert bundle.schema["colour"].categories == ("blue", "green", "red")
    assert bundle.schema.classes == ("no", "yes")


def test_parquet_is_read_like_csv(tmp_path):
    path = tmp_path / "mixed.parquet"
    mixed_frame().to_parquet(path)
    result = run_cli(tmp_path / "home", "--data", str(path), "--target", "label")
    assert result.returncode == 0, result.stderr


BAD_CASES = {
    "missing target": (lambda f: f.drop(columns=["label"]), "target column 'label' not found"),
    "empty": (lambda f: f.iloc[0:0], "no rows"),
    "single class": (lambda f: f.assign(label="yes"), "single class"),
    "too many classes": (
        lambda f: f.assign(label=[f"c{i % 60}" for i in range(len(f))]),
        "60 classes",
    ),
    "text in numeric": (
        lambda f: f.assign(size=f["size"].astype(object).where(f.index != 5, "oops")),
        "column 'size' is numeric but has text",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_csv_is_refused_and_nothing_is_saved(tmp_path, case):
    make, message = BAD_CASES[case]
    path = tmp_path / "bad.csv"
    make(mixed_frame()).to_csv(path, index=False)
    home = tmp_path / "home"
    result = run_cli(home, "--data", str(path), "--target", "label", "--promote")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (home / "bentoml" / "models").exists() or not any(
        (home / "bentoml" / "models").rglob("contract.json")
    )


def test_unreadable_file_is_bad_data(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("x")
    result = run_cli(tmp_path, "--data", str(path))
    assert result.returncode == 2 and ".csv or .parquet" in result.stderr


@pytest.mark.integration
def test_the_entry_point_trains_and_prints_its_json_line(tmp_path):
    ok = run_cli(tmp_path, "--promote", "--n-estimators", "20", subprocess_=True)
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["promoted"] is True and out["model_tag"].startswith("vigil-model:")
