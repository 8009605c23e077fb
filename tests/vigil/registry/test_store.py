"""The model registry on SQLite and PostgreSQL through the same code: saving, verified
artifacts, the production pointer (exactly one, with rollback and history) under concurrent
promotions and rollbacks, and a replica with an empty VIGIL_HOME."""

from __future__ import annotations

import multiprocessing
import random
import uuid

import pytest

from tests.support.registry import corrupt_artifact
from vigil.registry.schema import drop_registry_schema
from vigil.registry.store import (
    NO_PRODUCTION,
    ROLLBACK_DEPTH,
    ArtifactIntegrityError,
    InvalidTag,
    NoProductionModel,
    ProductionChanged,
    Registry,
    UnknownModel,
)
from vigil.settings import get_settings


@pytest.fixture(scope="module")
def source(trained_home_template):
    """The default model, to save into fresh registries."""
    return Registry(get_settings(home=trained_home_template)).load_production()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    """Settings overrides for a fresh, empty registry on each back end."""
    if request.param == "sqlite":
        yield {"database_url": f"sqlite:///{tmp_path / 'registry.sqlite3'}"}
        return
    url, prefix = request.getfixturevalue("postgres_url")
    overrides = {"database_url": url, "table_prefix": prefix}
    yield overrides
    registry = Registry(get_settings(home=tmp_path / "cleanup", **overrides))
    drop_registry_schema(registry.engine, prefix)


def settings_for(db, home):
    return get_settings(home=home, **db)


def save_copy(registry, bundle, **extra):
    return registry.save(bundle.pipeline, bundle.contract, bundle.reference, **extra)


def test_empty_registry_is_a_clear_error(db, tmp_path):
    registry = Registry(settings_for(db, tmp_path / "home"))
    assert registry.production_tag() is None and registry.tags() == []
    with pytest.raises(NoProductionModel, match="make train"):
        registry.load_production()
    with pytest.raises(NoProductionModel):
        registry.rollback()


def test_a_replica_with_an_empty_home_serves_what_another_saved(db, tmp_path, source):
    trainer = Registry(settings_for(db, tmp_path / "trainer"))
    tag = save_copy(trainer, source, artifacts={"model.onnx": b"\x08\x01onnx"})
    trainer.promote(tag)
    replica_home = tmp_path / "replica"
    replica = Registry(settings_for(db, replica_home))
    bundle = replica.load_production()
    assert bundle.tag == tag and bundle.contract["tag"] == tag
    assert bundle.metrics == source.metrics and bundle.schema == source.schema
    assert bundle._pipeline is None  # lazy: not unpickled by load
    assert (
        bundle.pipeline.predict(source.reference[source.schema.names])
        == (source.pipeline.predict(source.reference[source.schema.names]))
    ).all()
    assert bundle.reference.equals(source.reference)
    path = bundle.artifact_path("model.onnx")
    assert path.read_bytes() == b"\x08\x01onnx" and path.is_relative_to(replica_home)
    with pytest.raises(KeyError):
        bundle.artifact_path("absent.bin")
    # A damaged cache file is fetched again, not served.
    path.write_bytes(b"tampered")
    assert bundle.artifact_path("model.onnx").read_bytes() == b"\x08\x01onnx"


def test_bytes_that_do_not_match_their_recorded_sha256_are_refused(db, tmp_path, source):
    settings = settings_for(db, tmp_path / "home")
    registry = Registry(settings)
    tag = save_copy(registry, source)
    corrupt_artifact(settings, tag)
    bundle = Registry(settings_for(db, tmp_path / "fresh")).load(tag)
    with pytest.raises(ArtifactIntegrityError, match="does not match the sha256"):
        _ = bundle.pipeline


def test_only_model_tags_are_accepted_before_any_lookup(db, tmp_path):
    registry = Registry(settings_for(db, tmp_path / "home"))
    for bad in ("other:abc", "vigil-model:../x", "vigil-model:", "' OR 1=1 --", "x" * 300):
        for call in (registry.load, registry.promote, registry.model):
            with pytest.raises(InvalidTag, match="vigil-model:<version>"):
                call(bad)
    with pytest.raises(UnknownModel, match="not found"):
        registry.promote("vigil-model:doesnotexist")
    assert registry.production_tag() is None


def test_promote_roll_back_and_history(db, tmp_path, source):
    registry = Registry(settings_for(db, tmp_path / "home"))
    first, second = save_copy(registry, source), save_copy(registry, source)
    assert registry.tags() == [first, second]
    registry.promote(first)
    registry.promote(second)
    registry.promote(second)  # already production: nothing happens
    assert registry.production_tag() == second
    assert registry.load_production().contract["tag"] == second
    assert registry.rollback(by="ops@test") == first
    assert registry.production_tag() == first
    events = [(e.revision, e.action, e.tag, e.previous) for e in registry.history()]
    assert events == [
        (1, "promote", first, None),
        (2, "promote", second, first),
        (3, "rollback", first, second),
    ]
    assert registry.history()[-1].by == "ops@test"
    assert registry.pointer().revision == 3
    with pytest.raises(NoProductionModel):
        registry.rollback()


def test_promotion_is_compare_and_set_on_the_expected_production(db, tmp_path, source):
    """A retrain reads b, an operator rolls back to a meanwhile: promoting c "expecting b"
    is refused, naming who changed production, and nothing changes."""
    registry = Registry(settings_for(db, tmp_path / "home"))
    a, b, c = (save_copy(registry, source) for _ in range(3))
    with pytest.raises(ProductionChanged, match="production is empty"):
        registry.promote(a, expect=b)
    registry.promote(a, expect=NO_PRODUCTION)
    registry.promote(b, expect=a)
    parent = registry.production_tag()
    assert registry.rollback(by="ops@test", expect=b) == a
    with pytest.raises(ProductionChanged, match=rf"production is {a}, not {parent}.*by ops@test"):
        registry.promote(c, expect=parent)
    with pytest.raises(ProductionChanged, match="by ops@test"):
        registry.rollback(expect=b)
    assert registry.production_tag() == a and registry.pointer().revision == 3
    registry.promote(c, expect=a)
    assert registry.production_tag() == c


def test_the_rollback_stack_is_bounded(db, tmp_path, source):
    registry = Registry(settings_for(db, tmp_path / "home"))
    tag = save_copy(registry, source)
    other = save_copy(registry, source)
    for _ in range(ROLLBACK_DEPTH + 5):  # alternate: every promotion pushes one tag
        registry.promote(other)
        tag, other = other, tag
    pointer = registry.pointer()
    assert len(pointer.previous) == ROLLBACK_DEPTH
    assert pointer.revision == ROLLBACK_DEPTH + 5


def test_collection_deletes_only_models_nothing_refers_to(db, tmp_path, source):
    """Production, the rollback stack and the newest saved stay, with their bytes; the rest
    go, and the blobs only they used with them."""
    registry = Registry(settings_for(db, tmp_path / "home"))
    tags = [save_copy(registry, source) for _ in range(6)]
    registry.promote(tags[0])
    registry.promote(tags[1])  # tags[0] is on the rollback stack
    unique = registry.save(source.pipeline, source.contract, source.reference, artifacts={
        "extra.bin": b"only this model has these bytes",
    })  # fmt: skip
    registry.promote(tags[2])
    registry.promote(unique)
    registry.rollback()  # production is tags[2]: `unique` is referenced by nothing now
    assert registry.collect(keep_latest=100) == ([], 0)  # all among the newest 100
    newest = save_copy(registry, source)
    deleted, freed = registry.collect(keep_latest=1)
    assert sorted(deleted) == sorted([unique, tags[3], tags[4], tags[5]])
    assert freed >= 1  # extra.bin, and each model's own contract
    assert set(registry.tags()) == {tags[0], tags[1], tags[2], newest}
    for tag in registry.tags():
        assert registry.load(tag).pipeline is not None
    with pytest.raises(UnknownModel):
        registry.load(unique)


def _churn(settings_kwargs: dict, tags: list[str], seed: int, n: int) -> int:
    registry = Registry(get_settings(**settings_kwargs))
    rng = random.Random(seed)
    done = 0
    for _ in range(n):
        try:
            if rng.random() < 0.4:
                registry.rollback(by=f"worker-{seed}")
            else:
                registry.promote(rng.choice(tags), by=f"worker-{seed}")
            done += 1
        except NoProductionModel:
            pass
    return done


def test_concurrent_promotions_and_rollbacks_never_interleave(db, tmp_path, source):
    """Processes promoting and rolling back at once: replaying the history from the start
    gives exactly the pointer and rollback stack stored, and revisions have no gap."""
    kwargs = {"home": tmp_path / "home", **db}
    registry = Registry(get_settings(**kwargs))
    tags = [save_copy(registry, source) for _ in range(3)]
    registry.promote(tags[0])
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        pool.starmap(_churn, [(kwargs, tags, seed, 25) for seed in range(4)])
    history = registry.history()
    pointer = registry.pointer()
    assert [e.revision for e in history] == list(range(1, len(history) + 1))
    assert pointer.revision == len(history) > 20
    tag, stack = None, []
    for event in history:
        assert event.previous == tag, event
        if event.action == "promote":
            if tag is not None:
                stack.append(tag)
                del stack[:-ROLLBACK_DEPTH]  # the stack keeps the newest ROLLBACK_DEPTH
        else:
            assert stack and stack.pop() == event.tag, event
        tag = event.tag
    assert (pointer.tag, list(pointer.previous)) == (tag, stack)


def test_models_cli_lists_and_shows_with_lineage(db, tmp_path, source, monkeypatch):
    import json

    from typer.testing import CliRunner

    from training.models import cli

    for key, value in db.items():
        monkeypatch.setenv(f"VIGIL_{key.upper()}", value)
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "home"))
    registry = Registry(get_settings())
    parent = save_copy(registry, source)
    contract = {**source.contract, "lineage": {"parent": parent, "recent_rows": 10}}
    child = registry.save(source.pipeline, contract, source.reference)
    registry.promote(parent)
    registry.promote(child)

    runner = CliRunner()
    listed = runner.invoke(cli, ["list", "--json"])
    assert listed.exit_code == 0, listed.output
    doc = json.loads(listed.output)
    assert doc["production"] == child and doc["revision"] == 2
    by_tag = {m["tag"]: m for m in doc["models"]}
    assert list(by_tag) == [parent, child]
    assert by_tag[child]["production"] and not by_tag[parent]["production"]
    assert by_tag[child]["parent"] == parent and by_tag[child]["lineage"] == [parent]
    assert by_tag[child]["metrics"] == source.metrics
    assert by_tag[child]["dataset_sha256"] == source.contract["dataset_sha256"]
    assert by_tag[child]["git_commit"] == source.contract.get("git_commit")
    assert by_tag[child]["created_at"].endswith("+00:00")
    assert [e["action"] for e in doc["history"]] == ["promote", "promote"]
    assert by_tag[parent]["promotions"][0]["tag"] == parent

    shown = runner.invoke(cli, ["show", child, "--json"])
    assert shown.exit_code == 0, shown.output
    one = json.loads(shown.output)
    assert one["contract"]["tag"] == child and one["lineage_detail"]["recent_rows"] == 10
    assert set(one["artifacts"]) == {"contract.json", "pipeline.joblib", "reference.parquet"}

    text = runner.invoke(cli, ["list"])
    assert text.exit_code == 0 and f"* {child}" in text.output
    assert runner.invoke(cli, ["show", child]).exit_code == 0
    bad = runner.invoke(cli, ["show", "other:1"])
    assert bad.exit_code == 2 and "vigil-model:<version>" in bad.output
    missing = runner.invoke(cli, ["show", f"vigil-model:{uuid.uuid4().hex[:12]}"])
    assert missing.exit_code == 2 and "not found" in missing.output


def test_a_rollback_past_the_first_says_what_the_stack_holds_and_how_to_go_forward(
    db, tmp_path, source
):
    """Promote a, promote b, roll back to a: a second rollback is refused, saying that the
    rollback stack is empty (a was the first) and that promoting b goes forward again."""
    registry = Registry(settings_for(db, tmp_path / "home"))
    a, b = save_copy(registry, source), save_copy(registry, source)
    with pytest.raises(NoProductionModel, match="no production model yet"):
        registry.rollback()
    registry.promote(a)
    registry.promote(b)
    assert registry.rollback() == a
    with pytest.raises(NoProductionModel) as refused:
        registry.rollback()
    message = str(refused.value)
    assert f"the rollback stack is empty: production {a} has no model before it" in message
    assert f"python -m training.promote {b}" in message
    assert registry.production_tag() == a and registry.pointer().revision == 3
