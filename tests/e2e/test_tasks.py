"""End to end for every task: a binary and a multiclass classifier and a regressor, trained
with the training CLI, and two models trained the way a user would and registered with
``training.register`` (a HistGradientBoostingClassifier behind a ColumnTransformer with a
categorical column, saved with skops; a bare Ridge regressor saved with joblib), each served
by the real service, checked by the real monitor and scraped by a real Prometheus that
evaluates the committed alert rules (every ``for:`` 0 s).

For each model, in order: the answer's shape and ``/model``; the task's metrics at
``/metrics``; a check of normal traffic (no drift, the task's prediction-drift test); true
labels through ``/feedback`` (live quality with the task's metrics); wrong labels for the same
predictions (a repeated id replaces its label), and ``ModelQualityDrop`` fires on the task's
metric; drifted traffic, and the check finds it. One stack per model, shared by its tests.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, need_binary
from tests.support.alerting import Prometheus, start_prometheus
from tests.support.cli import run_command
from tests.support.processes import Proc, base_env, http_ok, stop_all, wait_until
from tests.support.prom import scrape
from vigil.render.alerting import render_configs
from vigil.stack.traffic import Drift, Tally, feedback_labels, make_rows

pytestmark = pytest.mark.integration

WINDOW_ROWS = 200
MIN_LABELS = 50
CHECK_EVERY_SECONDS = 5  # a check with the task's estimates costs a second here: not every two
# name: (task, classes); bundled datasets are trained, "user_*" models registered.
MODELS = {
    "breast_cancer": ("classification", 2),
    "wine": ("classification", 3),
    "diabetes": ("regression", 0),
    "user_hgb_skops": ("classification", 2),
    "user_ridge_joblib": ("regression", 0),
}


@dataclass
class TaskStack:
    dataset: str
    task: str
    classes: int
    home: Path
    env: dict[str, str]
    service_url: str
    monitor_url: str
    prometheus: Prometheus
    procs: dict[str, Proc]
    model_version: str = ""
    train_line: dict = field(default_factory=dict)
    answered: list[tuple[dict, str, object]] = field(default_factory=list)  # row, id, truth

    def wait(self, check, what: str, timeout: float = 60.0):
        return wait_until(check, timeout, what, [p for p in self.procs.values() if p.alive()])

    def post(self, path: str, body: dict) -> httpx.Response:
        return httpx.post(f"{self.service_url}{path}", json=body, timeout=30)

    def check(self, report: bool = False) -> dict:
        """One check, as ``monitoring.drift check --json`` prints it, made in this process
        (the CLI itself is tested in tests/monitoring/test_drift_cli.py): a subprocess would
        import Evidently again for every check."""
        from monitoring.check import Checker
        from vigil.settings import get_settings

        vigil = {k[6:].lower(): v for k, v in self.env.items() if k.startswith("VIGIL_")}
        vigil.pop("env_file", None)
        checker = Checker(get_settings(**vigil), report=report)
        try:
            return json.loads(json.dumps(checker.check().payload))
        finally:
            checker.close()


def _train(name: str, tmp: Path, env: dict[str, str]) -> dict:
    """Make the production model ``name`` as a user would, through the CLI (run in this
    process, which has imported already what a new interpreter would import again); its JSON
    line."""
    from tests.support import user_models

    if name.startswith("user_"):
        user, suffix, save, extra = {
            "user_hgb_skops": (user_models.hgb_classifier(), "skops", user_models.save_skops, []),
            "user_ridge_joblib": (
                user_models.ridge_regressor(), "joblib", user_models.save_joblib, ["--trust-pickle"]
            ),
        }[name]  # fmt: skip
        model = save(user.model, tmp / f"model.{suffix}")
        reference, holdout = user.write_data(tmp / "data")
        argv = [
            "training.register", "--model", str(model), "--reference", str(reference),
            "--holdout", str(holdout), "--target", user.target, "--promote", *extra,
        ]  # fmt: skip
    else:
        argv = ["training.train", "--dataset", name, "--seed", "7", "--promote"]
    vigil = {k[6:].lower(): v for k, v in env.items() if k.startswith("VIGIL_")}
    out = run_command(*argv, **vigil)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=list(MODELS))
def stack(request, tmp_path_factory):
    need_binary("prometheus")
    dataset = request.param
    task, classes = MODELS[dataset]
    tmp = tmp_path_factory.mktemp(f"task-{dataset}")
    home = tmp / "vigil-home"
    ports = {name: free_port() for name in ("service", "monitor", "prometheus")}
    env = base_env(
        home=home,
        host="127.0.0.1",
        port=ports["service"],
        monitor_host="127.0.0.1",
        monitor_port=ports["monitor"],
        workers=2,
        drift_interval_seconds=CHECK_EVERY_SECONDS,
        drift_min_interval_seconds=1,
        drift_window_rows=WINDOW_ROWS,
        drift_min_rows=WINDOW_ROWS // 2,
        quality_alert_min_labels=MIN_LABELS,
        reports_keep=2,
    )
    configs = render_configs(
        tmp / "config",
        service_target=f"127.0.0.1:{ports['service']}",
        monitor_target=f"127.0.0.1:{ports['monitor']}",
        alertmanager_target=f"127.0.0.1:{free_port()}",
        webhook_url="http://127.0.0.1:9/unused",
        scrape_interval="1s",
        evaluation_interval="1s",
        for_all="0s",
        quality_min_labeled_rows=MIN_LABELS,
    )
    logs = tmp / "logs"
    logs.mkdir()
    procs: dict[str, Proc] = {}
    try:
        # Prometheus and the monitor need no model (the monitor follows production when it
        # appears): they start while the model trains.
        procs["prometheus"] = start_prometheus(
            configs["prometheus"],
            tmp / "prometheus",
            ports["prometheus"],
            logs / "prometheus.log",
            "--rules.alert.resend-delay=1s",
            env=env,
        )
        procs["monitor"] = Proc(
            "monitor", [sys.executable, "-m", "monitoring.drift", "run"], logs / "monitor.log", env
        )
        train_line = _train(dataset, tmp, env)
        s = TaskStack(
            dataset=dataset,
            task=task,
            classes=classes,
            home=home,
            env=env,
            service_url=f"http://127.0.0.1:{ports['service']}",
            monitor_url=f"http://127.0.0.1:{ports['monitor']}",
            prometheus=Prometheus(f"http://127.0.0.1:{ports['prometheus']}"),
            procs=procs,
            model_version=train_line["model_tag"],
            train_line=train_line,
        )
        procs["service"] = Proc(
            "service", [sys.executable, "-m", "service", "serve"], logs / "service.log", env
        )
        s.wait(lambda: http_ok(f"{s.service_url}/readyz"), "the service's /readyz", 120)
        s.wait(lambda: http_ok(f"{s.monitor_url}/metrics"), "the monitor's /metrics", 60)
        yield s
    finally:
        stop_all(procs.values())


@pytest.fixture(autouse=True)
def _logs_on_failure(request, stack):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("\n".join(p.describe() for p in stack.procs.values()))


def _bundle(stack: TaskStack):
    from vigil.registry.store import Registry
    from vigil.settings import get_settings

    return Registry(get_settings(home=stack.home)).load_production()


def test_training_says_the_task_and_its_metrics(stack):
    line = stack.train_line
    assert line["task"] == stack.task
    assert line["promoted"] is True
    expected = {"mae", "rmse", "r2"} if stack.task == "regression" else {"accuracy", "f1"}
    assert expected <= set(line["metrics"])


def test_answers_have_the_tasks_shape(stack):
    bundle = _bundle(stack)
    reference = bundle.reference
    rows = reference[bundle.schema.names].head(WINDOW_ROWS)
    labels = reference["__label__"].head(WINDOW_ROWS).tolist()
    records = rows.astype(object).where(rows.notna(), None).to_dict(orient="records")
    card = httpx.get(f"{stack.service_url}/model", timeout=10).json()
    assert card["task"] == stack.task
    assert card["model_version"] == stack.model_version
    assert len(records) >= WINDOW_ROWS // 2  # wine's reference: its 142 training rows
    for start in range(0, len(records), 50):
        chunk = records[start : start + 50]
        resp = stack.post("/predict", {"instances": chunk})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert len(body["predictions"]) == len(body["prediction_ids"]) == len(chunk)
        if stack.task == "regression":
            assert "probabilities" not in body
            assert all(isinstance(p, float) for p in body["predictions"])
        else:
            assert all(len(p) == stack.classes for p in body["probabilities"])
            for p in body["probabilities"]:
                assert sum(p.values()) == pytest.approx(1.0, abs=1e-4)
            classes = {str(c) for c in bundle.schema.classes}
            assert {str(p) for p in body["predictions"]} <= classes
        for i, pid in enumerate(body["prediction_ids"]):
            stack.answered.append((records[start + i], pid, labels[start + i]))


def test_metrics_count_the_tasks_predictions(stack):
    from tests.support.prom import total

    text = scrape(stack.service_url)
    version = stack.model_version
    answered = len(stack.answered)
    assert total(text, "vigil_predictions_total", model_version=version) >= answered
    if stack.task == "regression":
        assert total(text, "vigil_prediction_value_count", model_version=version) >= answered
        assert total(text, "vigil_prediction_confidence_count", model_version=version) == 0
    else:
        assert total(text, "vigil_prediction_confidence_count", model_version=version) >= answered


def test_normal_traffic_is_checked_with_the_tasks_prediction_test(stack):
    payload = stack.check()
    assert payload["model_version"] == stack.model_version
    assert payload["window_rows"] == len(stack.answered)
    assert payload["drift_detected"] is False, payload["drifted_features"]
    expected = "ks" if stack.task == "regression" else "chisquare"
    assert payload["prediction_drift"]["method"] == expected


def _labels(stack: TaskStack, wrong: bool) -> list[dict]:
    """The reference's labels of every answered row, all right or all wrong (another class,
    or the value moved by three standard deviations), as ``make traffic`` sends them."""
    bundle = _bundle(stack)
    tally = Tally(
        prediction_ids=[pid for _, pid, _ in stack.answered],
        answered=list(range(len(stack.answered))),
    )
    truths = [truth for _, _, truth in stack.answered]
    return feedback_labels(
        tally, truths, bundle.task, bundle.schema.classes, share=1.0, wrong=float(wrong)
    )


def test_true_labels_give_live_quality_with_the_tasks_metrics(stack):
    resp = stack.post("/feedback", {"labels": _labels(stack, wrong=False)})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"accepted": len(stack.answered), "unknown_ids": []}
    bad = {"prediction_id": stack.answered[0][1], "label": "not-a-label"}
    resp = stack.post("/feedback", {"labels": [bad]})
    assert resp.status_code == 400
    assert resp.json()["detail"][0]["loc"] == ["labels", 0, "label"]
    quality = stack.check()["quality"]
    assert quality["labeled_rows"] == len(stack.answered)
    if stack.task == "regression":
        assert set(quality) >= {"mae", "rmse", "r2", "mean_error"}
        assert quality["r2"] > 0.2
    else:
        assert set(quality) >= {"accuracy", "f1", "roc_auc"}
        assert quality["accuracy"] > 0.8  # the reference rows: mostly training rows


def test_wrong_labels_raise_model_quality_drop_on_the_tasks_metric(stack):
    resp = stack.post("/feedback", {"labels": _labels(stack, wrong=True)})
    assert resp.status_code == 200, resp.text
    metric = "rmse" if stack.task == "regression" else "accuracy"
    expr = f'ALERTS{{alertname="ModelQualityDrop", alertstate="firing", metric="{metric}"}}'
    started = time.monotonic()
    firing = stack.wait(lambda: stack.prometheus.query(expr), f"ModelQualityDrop on {metric}", 90)
    assert dict(firing[0]["metric"])["model_version"] == stack.model_version
    print(f"[e2e] {stack.dataset}: ModelQualityDrop {metric} in {time.monotonic() - started:.1f} s")


def test_the_tasks_dashboard_panels_have_data(stack):
    """Every query of the panels for this task's models returns data from the real Prometheus
    (the quality panels once labels exist; rates once two scrapes saw traffic)."""
    from vigil.render.dashboards import dashboard_queries

    wanted = [
        q
        for q in dashboard_queries(task=stack.task, candidate=False)
        if any(
            name in q
            for name in (
                "vigil_model_quality",
                "vigil_prediction_value",
                "vigil_prediction_confidence",
                "vigil_predictions_total",
            )
        )
    ]
    assert wanted
    rows = make_rows(_bundle(stack).reference, _bundle(stack).schema, 100)

    missing = list(wanted)

    def all_have_data() -> bool:
        resp = stack.post("/predict", {"instances": rows})  # keeps rate() above zero
        assert resp.status_code == 200, resp.text
        missing[:] = [q for q in wanted if not stack.prometheus.query(q)]
        return not missing

    deadline = time.monotonic() + 60
    while not all_have_data() and time.monotonic() < deadline:
        time.sleep(1)
    assert not missing, f"dashboard queries without data: {missing}"


def test_drifted_traffic_is_detected(stack):
    bundle = _bundle(stack)
    rows = make_rows(bundle.reference, bundle.schema, WINDOW_ROWS, drift=Drift.most, shift=3.0)
    for start in range(0, len(rows), 50):
        resp = stack.post("/predict", {"instances": rows[start : start + 50]})
        assert resp.status_code == 200, resp.text
    payload = stack.check(report=True)
    assert payload["drift_detected"] is True
    assert payload["report_path"]
