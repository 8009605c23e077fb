"""Read the model registry: every version, its lineage, and the production history.

    python -m training.models list [--json]
    python -m training.models show TAG [--json]

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
    from vigil.task import task_for

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
    from vigil.registry import Registry
    from vigil.settings import get_settings

    return Registry(get_settings())


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2) from None


@cli.command("list")
def list_models(as_json: Annotated[bool, JSON_OPTION] = False) -> None:
    """Every saved model, oldest first: created at, metrics, dataset sha256, git commit,
    parent and lineage, whether production; and every promotion and rollback."""
    from vigil.registry import RegistryError

    try:
        registry = _open()
        records, history, pointer = registry.models(), registry.history(), registry.pointer()
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
    for e in history:
        typer.echo(f"  r{e.revision} {_iso(e.at)[:19]} {e.action:<8} {e.tag}  (was "
                   f"{e.previous or 'none'}) by {e.by}")  # fmt: skip


@cli.command()
def show(
    tag: Annotated[str, typer.Argument(help="A vigil-model:<version> tag")],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """One model: its record, lineage, contract and promotion history."""
    from vigil.registry import InvalidTag, RegistryError, UnknownModel

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
    for name, info in doc["artifacts"].items():
        typer.echo(f"{'artifact:':<16}{name} sha256={info['sha256']} ({info['size']} bytes)")
    for e in doc["promotions"]:
        typer.echo(f"{'history:':<16}r{e['revision']} {e['at'][:19]} {e['action']} by {e['by']}")


def _quality(doc: dict[str, Any]) -> str:
    """The held-out figure ModelQualityDrop watches for the model's task (accuracy, RMSE)."""
    from vigil.task import get_task

    metric = get_task(doc["task"]).quality_metric
    return f"{metric}={_num(doc['metrics'].get(metric))}"


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    cli()
