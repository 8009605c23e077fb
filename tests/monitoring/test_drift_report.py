"""The HTML report: Evidently ran our tests with our thresholds and agrees with the JSON; the
awkward columns (all missing, constant, unseen category) do not break it; retention."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from monitoring import report as report_module
from monitoring.check import Checker
from monitoring.report import EVIDENTLY_METHOD, PREDICTION
from monitoring.report_store import list_reports, prune_reports
from tests.monitoring.generators import fill_log, mixed_frame
from vigil.log.inference_log import InferenceLog
from vigil.registry.store import Registry
from vigil.settings import get_settings


@pytest.fixture(scope="module")
def mixed_home(mixed_model_home):
    return mixed_model_home(600)


@pytest.fixture
def awkward(mixed_home, tmp_path):
    """A window with a vanished column, a stuck one and an unseen category."""
    home = tmp_path / "home"
    shutil.copytree(mixed_home, home)
    settings = get_settings(home=home, reports_keep=1)
    log = InferenceLog.from_settings(settings)
    log.create_schema()
    bundle = Registry(settings).load_production()
    window = mixed_frame(800, seed=5).drop(columns="target")
    window["balance"] = None
    window["score"] = 0.25
    window.loc[np.random.default_rng(1).random(800) < 0.2, "color"] = "ultraviolet"
    fill_log(log, bundle, window)
    yield settings, log
    log.close()


def test_evidently_report_agrees_with_the_json(awkward):
    settings, log = awkward
    settings.reports_dir.mkdir(parents=True)
    stale = settings.reports_dir / "drift-20000101T000000.000000Z-old.html"
    stale.write_text("old")
    result = Checker(settings, log=log).check()
    p = result.payload
    assert set(p["drifted_features"]) == {"balance", "score", "color"}
    balance = p["features"]["balance"]
    assert (balance["score"], balance["drifted"], balance["missing_share"]) == (None, True, 1.0)

    evidently = result.evidently
    tested = [name for name, f in p["features"].items() if f["score"] is not None]
    assert set(evidently) == set(tested) | {PREDICTION}  # the vanished column stays out
    for name in tested:
        ours, theirs = p["features"][name], evidently[name]
        assert theirs["method"] == EVIDENTLY_METHOD[ours["method"]]
        assert theirs["threshold"] == ours["threshold"]
        assert theirs["score"] == pytest.approx(ours["score"], rel=1e-9, abs=1e-300)
        assert theirs["drifted"] == ours["drifted"], name
    pred = evidently[PREDICTION]
    assert pred["threshold"] == p["prediction_drift"]["threshold"] == settings.drift_alpha
    assert pred["score"] == pytest.approx(p["prediction_drift"]["score"], rel=1e-9)

    html = open(p["report_path"], encoding="utf-8").read()
    assert "Vigil drift check" in html and "ks p_value (vigil)" in html
    assert "all values missing in the window" in html
    assert f"{p['features']['income']['score']:.3g}" in html
    assert f"{p['features']['income']['threshold']:.3g}" in html
    assert list_reports(settings.reports_dir) == [Path(p["report_path"])]
    assert not stale.exists()  # reports_keep=1


def test_a_failing_report_keeps_the_verdict(awkward, monkeypatch):
    settings, log = awkward

    def broken(*_a, **_kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_module, "write_report", broken)
    p = Checker(settings, log=log).check().payload
    assert p["report_path"] is None and p["drift_detected"] is not None
    assert "report failed: RuntimeError: disk full" in p["message"]


def test_prune_keeps_the_newest(tmp_path):
    names = [f"drift-2026010{i}T000000.000000Z-v.html" for i in range(1, 6)]
    for name in names:
        (tmp_path / name).write_text("x")
    (tmp_path / "notes.txt").write_text("not a report")
    removed = prune_reports(tmp_path, 2)
    assert sorted(p.name for p in removed) == names[:3]
    assert [p.name for p in list_reports(tmp_path)] == names[3:]
    assert (tmp_path / "notes.txt").exists()
