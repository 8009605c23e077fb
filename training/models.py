"""Read the model registry: every version, its lineage, and the production history.

    python -m training.models list [--json]
    python -m training.models show TAG [--json]
    python -m training.models shadow TAG | shadow --stop
    python -m training.models canary TAG --percent P | canary --stop
    python -m training.models follow-mlflow --model NAME [--champion A] [--challenger A]
        [--challenger-as shadow|canary:P] [--once] [--interval S]

``--json`` prints one JSON document. The same registry every replica serves from
(``VIGIL_DATABASE_URL``, SQLite under ``VIGIL_HOME`` by default).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer

cli = typer.Typer(add_completion=False, no_args_is_help=True)
JSON_OPTION = typer.Option("--json", help="Print one JSON document")


@cli.callback()
def main() -> None:
    """The model registry: saved versions, lineage, production pointer and history."""


def _iso(ts: float | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def _lineage(tag: str, parents: dict[str, str | None]) -> list[str]:
    """``tag``'s ancestors, nearest first (a cycle or an unknown parent ends the walk)."""
    out: list[str] = []
    parent = parents.get(tag)
    while parent and parent not in out and parent != tag:
        out.append(parent)
        parent = parents.get(parent)
    return out


def _model_doc(record, production: str | None, parents: dict, history: list) -> dict[str, Any]:
    from vigil.tasks import task_for

    return {
        "tag": record.tag,
        "task": task_for(record.contract).name,
        "created_at": _iso(record.created_at),
        "production": record.tag == production,
        "metrics": record.metrics,
        "dataset_sha256": record.dataset_sha256,
        "git_commit": record.git_commit,
        "parent": record.parent,
        "lineage": _lineage(record.tag, parents),
        "lineage_detail": record.contract.get("lineage") or {},
        "artifacts": record.artifacts,
        "promotions": [_event_doc(e) for e in history if e.tag == record.tag],
    }


def _event_doc(event) -> dict[str, Any]:
    return {
        "revision": event.revision,
        "action": event.action,
        "tag": event.tag,
        "previous": event.previous,
        "at": _iso(event.at),
        "by": event.by,
    }


def _open():
    from vigil.registry.store import Registry
    from vigil.settings import get_settings

    return Registry(get_settings())


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2) from None


@cli.command("list")
def list_models(as_json: Annotated[bool, JSON_OPTION] = False) -> None:
    """Every saved model, oldest first: created at, metrics, dataset sha256, git commit,
    parent and lineage, whether production; and every promotion and rollback."""
    from vigil.registry.candidates import Candidates
    from vigil.registry.store import RegistryError

    try:
        registry = _open()
        records, history, pointer = registry.models(), registry.history(), registry.pointer()
        candidates = Candidates(registry)
        candidate, candidate_history = candidates.current(), candidates.history()
    except RegistryError as exc:
        _fail(exc)
    parents = {r.tag: r.parent for r in records}
    docs = [_model_doc(r, pointer.tag, parents, history) for r in records]
    if as_json:
        doc = {
            "production": pointer.tag,
            "revision": pointer.revision,
            "models": docs,
            "history": [_event_doc(e) for e in history],
            "candidate": _candidate_doc(candidate),
            "candidate_history": [{**e.__dict__, "at": _iso(e.at)} for e in candidate_history],
        }
        typer.echo(json.dumps(doc))
        return
    typer.echo(f"{'':2}{'TAG':<30} {'CREATED (UTC)':<20} {'TASK':<14} {'QUALITY':<18} "
               f"{'DATASET':<12} {'COMMIT':<9} PARENT")  # fmt: skip
    for d in docs:
        typer.echo(
            f"{'*' if d['production'] else ' ':2}{d['tag']:<30} {(d['created_at'] or '')[:19]:<20} "
            f"{d['task']:<14} {_quality(d):<18} "
            f"{(d['dataset_sha256'] or '-')[:12]:<12} {(d['git_commit'] or '-')[:9]:<9} "
            f"{d['parent'] or '-'}"
        )
    typer.echo(f"\nproduction: {pointer.tag or 'none'}   (* marks it)")
    if candidate.active:
        how = f" at {candidate.percent:g} %" if candidate.mode == "canary" else ""
        typer.echo(f"candidate:  {candidate.tag} ({candidate.mode}{how})")
    for e in history:
        typer.echo(f"  r{e.revision} {_iso(e.at)[:19]} {e.action:<8} {e.tag}  (was "
                   f"{e.previous or 'none'}) by {e.by}")  # fmt: skip


@cli.command()
def show(
    tag: Annotated[str, typer.Argument(help="A vigil-model:<version> tag")],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """One model: its record, lineage, contract and promotion history."""
    from vigil.registry.store import InvalidTag, RegistryError, UnknownModel

    try:
        registry = _open()
        record = registry.model(tag)
        records, history, pointer = registry.models(), registry.history(), registry.pointer()
    except (InvalidTag, UnknownModel, RegistryError) as exc:
        _fail(exc)
    doc = _model_doc(record, pointer.tag, {r.tag: r.parent for r in records}, history)
    doc["contract"] = record.contract
    if as_json:
        typer.echo(json.dumps(doc))
        return
    keys = ("tag", "task", "created_at", "production", "dataset_sha256", "git_commit", "parent")
    for key in keys:
        typer.echo(f"{key + ':':<16}{doc[key]}")
    typer.echo(f"{'lineage:':<16}{' <- '.join([tag, *doc['lineage']])}")
    typer.echo(f"{'metrics:':<16}{json.dumps(doc['metrics'])}")
    mlflow = (doc["lineage_detail"].get("registered") or {}).get("mlflow")
    if mlflow:  # registered with --from: where in MLflow it came from
        typer.echo(f"{'mlflow:':<16}" + " ".join(f"{k}={v}" for k, v in mlflow.items()))
    for name, info in doc["artifacts"].items():
        typer.echo(f"{'artifact:':<16}{name} sha256={info['sha256']} ({info['size']} bytes)")
    for e in doc["promotions"]:
        typer.echo(f"{'history:':<16}r{e['revision']} {e['at'][:19]} {e['action']} by {e['by']}")


def _quality(doc: dict[str, Any]) -> str:
    """The held-out figure ModelQualityDrop watches for the model's task (accuracy, RMSE)."""
    from vigil.tasks import get_task

    metric = get_task(doc["task"]).quality_metric
    return f"{metric}={_num(doc['metrics'].get(metric))}"


def _candidate_doc(candidate) -> dict[str, Any] | None:
    if not candidate.active:
        return None
    return {
        "model_version": candidate.tag,
        "mode": candidate.mode,
        "percent": candidate.percent if candidate.mode == "canary" else None,
        "revision": candidate.revision,
        "since": _iso(candidate.changed_at),
    }


def _candidate_command(
    mode: str, tag: str | None, stop: bool, percent: float, force: bool = False
) -> None:
    """Start or stop a shadow or a canary; every replica follows within seconds."""
    from vigil.registry.candidates import CandidateConflict, CandidateMisfit, Candidates
    from vigil.registry.store import InvalidTag, RegistryError, UnknownModel

    if (tag is None) == (not stop):
        typer.echo("error: give a TAG or --stop, not both", err=True)
        raise typer.Exit(2)
    try:
        registry = _open()
        candidates = Candidates(registry)
        if not stop:
            _check_servable(registry, tag)
        if stop:
            ended = candidates.stop(mode)
            doc = {"stopped": mode, "model_version": ended.tag}
        else:
            candidates.start(tag, mode, percent, force=force)
            doc = {"started": mode, "model_version": tag}
            if mode == "canary":
                doc["percent"] = percent
        doc["revision"] = candidates.current().revision
    except CandidateConflict as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except CandidateMisfit as exc:
        typer.echo(f"error: {exc}; nothing done (--force starts it anyway)", err=True)
        raise typer.Exit(2) from None
    except (InvalidTag, UnknownModel, RegistryError) as exc:
        _fail(exc)
    typer.echo(json.dumps(doc))
    from training.mlflow.aliases import mirror, warn_on_error

    warn_on_error(mirror(registry.settings))


def _check_servable(registry, tag: str) -> None:
    """Exit 2 when the replicas of this build could not load ``tag`` (they would run no
    candidate and the monitor would judge nothing): as ``training.promote`` refuses it."""
    from vigil.servable import why_not_servable

    problem = why_not_servable(registry.load(tag), registry.settings.inference)
    if problem:
        typer.echo(f"error: {tag} cannot be served by this build ({problem}); nothing done",
                   err=True)  # fmt: skip
        raise typer.Exit(2)


TAG_ARGUMENT = typer.Argument(help="The candidate's vigil-model:<version> tag")
STOP_OPTION = typer.Option("--stop", help="Stop it: every replica follows within seconds")
FORCE_OPTION = typer.Option(
    "--force", help="Start it even if it does not fit production (another task or features)"
)


@cli.command()
def shadow(
    tag: Annotated[str | None, TAG_ARGUMENT] = None,
    stop: Annotated[bool, STOP_OPTION] = False,
    force: Annotated[bool, FORCE_OPTION] = False,
) -> None:
    """Score every answered request with TAG too, after the answer and off its path; the
    monitor judges it against production. Never alongside a canary. TAG must fit production:
    same task, same features, at least its categories (exit 2 naming the difference)."""
    _candidate_command("shadow", tag, stop, 0.0, force)


@cli.command()
def canary(
    tag: Annotated[str | None, TAG_ARGUMENT] = None,
    percent: Annotated[
        float, typer.Option("--percent", min=0.01, max=100, help="Share of requests TAG answers")
    ] = 5.0,
    stop: Annotated[bool, STOP_OPTION] = False,
    force: Annotated[bool, FORCE_OPTION] = False,
) -> None:
    """Answer PERCENT % of requests (chosen by request id, the same on every replica) with
    TAG; the monitor judges it against production. Never alongside a shadow. TAG must fit
    production, as for a shadow."""
    _candidate_command("canary", tag, stop, percent, force)


@cli.command("follow-mlflow")
def follow_mlflow(
    model: Annotated[str, typer.Option("--model", help="The MLflow registered model to follow")],
    champion: Annotated[
        str, typer.Option(help="Alias whose new versions are gated and promoted")
    ] = "champion",
    challenger: Annotated[
        str, typer.Option(help="Alias whose new versions start as the shadow (or canary)")
    ] = "challenger",
    challenger_as: Annotated[
        str, typer.Option("--challenger-as", help="shadow, or canary:P for P % of requests")
    ] = "shadow",
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit")] = False,
    interval: Annotated[float, typer.Option(min=1.0, help="Seconds between passes")] = 30.0,
    trust: Annotated[
        list[str] | None,
        typer.Option(help="A type outside skops' trusted set to load anyway (repeatable)"),
    ] = None,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Load pickled models: they run code")
    ] = False,
) -> None:
    """Follow a registered model's @champion and @challenger in MLflow: a new challenger
    becomes the shadow (or canary), a new champion is gated, compared and promoted
    (compare-and-set; exit 3 with --once when production changed meanwhile) or refused with
    the reason in its version tags. One JSON line per pass.

    Example: python -m training.models follow-mlflow --model churn --challenger-as canary:10
    """
    from training.mlflow.follow import FollowOptions, parse_mode, run
    from vigil.settings import get_settings

    try:
        mode, percent = parse_mode(challenger_as)
    except ValueError as exc:
        _fail(exc)
    options = FollowOptions(
        model, champion, challenger, mode, percent, tuple(trust or ()), trust_pickle
    )
    code = run(get_settings(), options, once=once, interval=interval, echo=typer.echo)
    raise typer.Exit(code)


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    cli()
