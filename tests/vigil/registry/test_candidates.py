"""The candidate pointer in the registry on SQLite and PostgreSQL: a shadow or a canary,
never both, each start and stop in the history; the production model cannot be a candidate;
the monitor's verdicts, newest first."""

from __future__ import annotations

import json

import pytest

from vigil.registry.candidates import CandidateConflict, CandidateMisfit, Candidates, Verdict
from vigil.registry.schema import drop_registry_schema
from vigil.registry.store import Registry, UnknownModel
from vigil.settings import get_settings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry(request, tmp_path, default_bundle):
    if request.param == "sqlite":
        overrides = {"database_url": f"sqlite:///{tmp_path / 'registry.sqlite3'}"}
    else:
        url, prefix = request.getfixturevalue("postgres_url")
        overrides = {"database_url": url, "table_prefix": prefix}
    reg = Registry(get_settings(home=tmp_path / "home", **overrides))
    reg.promote(other(reg, default_bundle))
    yield reg
    if request.param == "postgres":
        drop_registry_schema(reg.engine, overrides["table_prefix"])


@pytest.fixture(scope="module")
def default_bundle(trained_home_template):
    return Registry(get_settings(home=trained_home_template)).load_production()


def other(registry, bundle) -> str:
    return registry.save(bundle.pipeline, bundle.contract, bundle.reference)


def test_a_shadow_and_a_canary_are_never_both_active(registry, default_bundle):
    candidates = Candidates(registry)
    assert not candidates.current().active
    tag = other(registry, default_bundle)
    candidates.start(tag, "shadow")
    now = candidates.current()
    assert (now.tag, now.mode, now.revision) == (tag, "shadow", 1)
    with pytest.raises(CandidateConflict, match="never both active"):
        candidates.start(tag, "canary", 10)
    with pytest.raises(CandidateConflict, match="no canary to stop"):
        candidates.stop("canary")
    candidates.stop("shadow")
    candidates.start(tag, "canary", 10)
    candidates.start(tag, "canary", 20)  # a new percent: a new revision
    now = candidates.current()
    assert (now.mode, now.percent, now.revision) == ("canary", 20.0, 4)
    candidates.stop("canary")
    assert not candidates.current().active
    history = [(e.action, e.mode, e.percent) for e in candidates.history()]
    assert history == [
        ("start", "shadow", 0.0),
        ("stop", "shadow", 0.0),
        ("start", "canary", 10.0),
        ("start", "canary", 20.0),
        ("stop", "canary", 20.0),
    ]


def test_production_and_unknown_models_cannot_be_candidates(registry):
    candidates = Candidates(registry)
    with pytest.raises(CandidateConflict, match="production model already"):
        candidates.start(registry.production_tag(), "shadow")
    with pytest.raises(UnknownModel):
        candidates.start("vigil-model:nosuchmodel", "shadow")
    assert candidates.current().revision == 0


def test_the_latest_verdict_is_the_newest(registry, default_bundle):
    candidates = Candidates(registry)
    tag = other(registry, default_bundle)
    assert candidates.latest_verdict(tag) is None
    for labeled, better in ((10, None), (500, True)):
        candidates.record_verdict(
            Verdict(
                tag,
                registry.production_tag(),
                "shadow",
                1.0,
                labeled,
                better,
                {"labeled_rows": labeled},
            )  # fmt: skip
        )
    latest = candidates.latest_verdict(tag)
    assert (latest.labeled_rows, latest.better, latest.figures) == (
        500, True, {"labeled_rows": 500}
    )  # fmt: skip


def test_the_migration_makes_the_tables_as_queried(tmp_path):
    """0004_candidates' frozen definitions and vigil.store.tables' agree."""
    import importlib.util

    import sqlalchemy as sa

    from vigil.store import migrations
    from vigil.store.tables import candidate_tables

    path = migrations._HERE / "versions" / "0004_candidates.py"
    spec = importlib.util.spec_from_file_location("m0004", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def shape(tables):
        return {
            t.name: (
                [(c.name, repr(c.type), c.nullable, c.primary_key, c.unique) for c in t.columns],
                sorted((i.name, [c.name for c in i.columns]) for i in t.indexes),
            )
            for t in tables
        }

    q = candidate_tables("p_")
    queried = [q.candidate, q.history, q.shadow, q.verdicts]
    assert shape(module.tables("p_")) == shape(queried)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrations.upgrade(engine, "p_", only_if_empty=True)
    with engine.connect() as conn:
        assert migrations.state(conn, "p_").state == "current"
        names = set(sa.inspect(conn).get_table_names())
    assert {t.name for t in queried} <= names


@pytest.fixture
def cli_registry(tmp_path, monkeypatch, default_bundle):
    """A registry under this test's VIGIL_HOME (as the CLI reads it) with a production model."""
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VIGIL_ENV_FILE", "")
    monkeypatch.delenv("VIGIL_DATABASE_URL", raising=False)
    registry = Registry(get_settings())
    registry.promote(other(registry, default_bundle))
    return registry


def test_models_list_shows_the_candidate_and_its_history(cli_registry, default_bundle):
    from typer.testing import CliRunner

    from training.models import cli

    tag = other(cli_registry, default_bundle)
    runner = CliRunner()
    started = runner.invoke(cli, ["canary", tag, "--percent", "5"])
    assert started.exit_code == 0, started.output
    refused = runner.invoke(cli, ["shadow", tag])
    assert refused.exit_code == 1 and "never both active" in refused.output
    listed = runner.invoke(cli, ["list", "--json"])
    doc = json.loads(listed.stdout)
    assert doc["candidate"]["model_version"] == tag and doc["candidate"]["percent"] == 5.0
    assert [e["action"] for e in doc["candidate_history"]] == ["start"]
    assert f"candidate:  {tag} (canary at 5 %)" in runner.invoke(cli, ["list"]).stdout
    assert runner.invoke(cli, ["canary", "--stop"]).exit_code == 0
    assert json.loads(runner.invoke(cli, ["list", "--json"]).stdout)["candidate"] is None


def test_a_candidate_the_replicas_could_not_load_is_refused(
    cli_registry, monkeypatch, default_bundle
):
    from typer.testing import CliRunner

    from training.models import cli

    contract = {k: v for k, v in default_bundle.contract.items() if k != "onnx"}
    tag = cli_registry.save(default_bundle.pipeline, contract, default_bundle.reference)
    monkeypatch.setenv("VIGIL_INFERENCE", "onnx")  # and the candidate has no ONNX artifact
    refused = CliRunner().invoke(cli, ["shadow", tag])
    assert refused.exit_code == 2 and "cannot be served" in refused.output
    assert not Candidates(Registry(get_settings())).current().active


@pytest.mark.parametrize("mode", ["shadow", "canary"])
def test_collection_keeps_the_running_candidate(registry, default_bundle, mode):
    """A shadow or canary on an older model survives collection (with its bytes), as
    production and the rollback stack do: the replicas load it from the registry."""
    candidates = Candidates(registry)
    tag = other(registry, default_bundle)
    candidates.start(tag, mode, 10)
    newer = [other(registry, default_bundle) for _ in range(3)]
    deleted, _ = registry.collect(keep_latest=1)
    assert tag not in deleted and sorted(deleted) == sorted(newer[:2])
    assert registry.load(tag).pipeline is not None
    candidates.stop(mode)
    deleted, _ = registry.collect(keep_latest=1)
    assert deleted == [tag]


def reshaped(registry, bundle, *, task: str | None = None, **features) -> str:
    """A copy of ``bundle`` saved with another contract: ``task``, and per feature name a
    replacement (a dict of its fields) or None to drop it (the pipeline is not read)."""
    schema = dict(bundle.contract["schema"])
    out = []
    for feature in schema["features"]:
        change = features.get(feature["name"], {})
        if change is not None:
            out.append({**feature, **change})
    out += [f for name, f in features.items() if f is not None and "name" in f]
    contract = {**bundle.contract, "schema": {**schema, "features": out}}
    if task is not None:
        contract["task"] = task
    return registry.save(bundle.pipeline, contract, bundle.reference)


def test_a_candidate_must_fit_production(registry, default_bundle):
    """Another task, a missing or an extra feature, another kind, fewer categories: refused
    under the candidate's lock, naming the difference, unless forced; more categories fit."""
    candidates = Candidates(registry)
    first = default_bundle.schema.names[0]
    plan = {"name": "plan", "kind": "categorical", "categories": ["basic", "pro"]}
    production = reshaped(registry, default_bundle, plan=plan)
    registry.promote(production)
    refusals = {
        reshaped(registry, default_bundle, task="regression", plan=plan): (
            "task regression, production's is classification"
        ),
        reshaped(registry, default_bundle): "lacks production's features 'plan'",
        reshaped(registry, default_bundle, plan=plan, age={"name": "age", "kind": "numeric"}): (
            "needs features production's requests lack: 'age'"
        ),
        reshaped(registry, default_bundle, plan={**plan, "kind": "numeric"}): (
            "feature 'plan' is numeric, production's is categorical"
        ),
        reshaped(registry, default_bundle, plan={**plan, "categories": ["basic"]}): (
            "feature 'plan' lacks production's categories 'pro'"
        ),
        reshaped(registry, default_bundle, plan=plan, **{first: None}): (
            f"lacks production's features {first!r}"
        ),
    }
    for tag, why in refusals.items():
        for mode in ("shadow", "canary"):
            with pytest.raises(CandidateMisfit, match=f"does not fit production {production}"):
                candidates.start(tag, mode, 10)
            assert why in candidates.misfit(tag)
    assert candidates.current().revision == 0  # nothing started
    wider = reshaped(registry, default_bundle, plan={**plan, "categories": ["basic", "pro", "x"]})
    assert candidates.misfit(wider) is None
    candidates.start(wider, "canary", 10)
    candidates.stop("canary")
    forced = next(iter(refusals))
    candidates.start(forced, "shadow", force=True)
    assert candidates.current().tag == forced


def test_the_commands_refuse_a_candidate_that_does_not_fit(cli_registry, default_bundle):
    """``training.models canary|shadow`` and ``training.promote`` (``--if-better``, or the
    running candidate) exit 2 naming the difference, nothing done; ``--force`` goes ahead."""
    import typer
    from typer.testing import CliRunner

    from training import promote
    from training.models import cli

    runner = CliRunner()
    production = cli_registry.production_tag()
    regressor = reshaped(cli_registry, default_bundle, task="regression")
    for mode in ("canary", "shadow"):
        refused = runner.invoke(cli, [mode, regressor])
        assert refused.exit_code == 2, refused.output
        assert f"{regressor} does not fit production {production}: task regression" in (
            refused.output
        )
        assert "Traceback" not in refused.output
    assert not Candidates(cli_registry).current().active
    app = typer.Typer()
    app.command()(promote.main)
    refused = runner.invoke(app, [regressor, "--if-better"])
    assert refused.exit_code == 1  # no verdict yet: refused before the fit is asked
    Candidates(cli_registry).record_verdict(
        Verdict(regressor, production, "shadow", 1.0, 10_000, True, {})
    )
    refused = runner.invoke(app, [regressor, "--if-better"])
    assert refused.exit_code == 2 and "does not fit production" in refused.output
    started = runner.invoke(cli, ["shadow", regressor, "--force"])
    assert started.exit_code == 0, started.output
    refused = runner.invoke(app, [regressor])  # the running candidate, promoted by hand
    assert refused.exit_code == 2 and "task regression" in refused.output
    assert cli_registry.production_tag() == production
    forced = runner.invoke(app, [regressor, "--force"])
    assert forced.exit_code == 0, forced.output
    assert cli_registry.production_tag() == regressor


def test_follow_mlflow_refuses_a_challenger_that_does_not_fit(cli_registry, default_bundle):
    """The follower's start of a challenger asks the same fit, and leaves the running
    candidate alone when it refuses."""
    from training.mlflow.follow import FollowOptions, _start_candidate

    candidates = Candidates(cli_registry)
    running = other(cli_registry, default_bundle)
    candidates.start(running, "shadow")
    regressor = reshaped(cli_registry, default_bundle, task="regression")
    options = FollowOptions(model="m")
    status, reason = _start_candidate(cli_registry.settings, options, regressor)
    assert status == "refused" and "does not fit production" in reason, reason
    assert candidates.current().tag == running
