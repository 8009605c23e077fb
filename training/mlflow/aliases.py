"""Vigil's pointers mirrored onto MLflow: aliases ``production``, ``shadow``, ``canary`` and
version tags ``vigil.status`` and ``vigil.reason``.

Vigil's registry stays the truth. ``reconcile`` reads it and moves MLflow to match (an alias
on the version that now holds the pointer, gone from the one that no longer does), so it
repairs whatever an outage or a hand edit left behind: every command that changes a pointer
calls it, and so does every ``follow-mlflow`` pass. A Vigil model without an MLflow version
(recorded while MLflow was off) simply has no alias.
"""

from __future__ import annotations

from typing import Any

from training.mlflow.store import (
    MODEL_TAG,
    REASON_TAG,
    STATUS_TAG,
    Store,
    bounded,
    client,
    store_for,
)

ROLES = ("production", "shadow", "canary")
RETIRED = "retired"


def mirror(settings) -> dict | None:
    """Reconcile now, bounded in time as tracking is: what changed, ``{"error": …}``, or
    None when MLflow is off or the embedded store was never created (nothing to mirror)."""
    store = store_for(settings)
    if store is None or (store.embedded and not _embedded_exists(store)):
        return None
    import mlflow  # noqa: F401  (local work, a second or more under load: outside the clock)

    return bounded(lambda reached: reconcile(settings, store, reached=reached))


def _embedded_exists(store: Store) -> bool:
    from pathlib import Path

    return Path(store.tracking_uri.removeprefix("sqlite:///")).is_file()


def wanted(settings) -> dict[str, str | None]:
    """Which Vigil model holds each role now (None: nobody)."""
    from vigil.registry import Candidates, Registry

    registry = Registry(settings)
    candidate = Candidates(registry).current()
    roles: dict[str, str | None] = {"production": registry.production_tag()}
    for mode in ("shadow", "canary"):
        roles[mode] = candidate.tag if candidate.active and candidate.mode == mode else None
    return roles


def reconcile(settings, store: Store, mlflow_client=None, *, reached=None) -> dict[str, Any]:
    """Move the aliases and status tags of ``store.model_name``'s versions to Vigil's
    pointers. Returns ``{"aliases": {role: version or None}, "changed": [...]}``."""
    mlflow_client = mlflow_client or client(store)
    name = store.model_name
    current = aliases_of(mlflow_client, name)
    versions = []
    if current is not None:
        versions = mlflow_client.search_model_versions(f"name = '{name}'")
    if reached is not None:
        reached.set()
    by_tag = {v.tags[MODEL_TAG]: v for v in versions if MODEL_TAG in v.tags}
    roles = wanted(settings)
    changed: list[str] = []
    aliases: dict[str, str | None] = {}
    for role, tag in roles.items():
        target = by_tag.get(tag) if tag else None
        holder = (current or {}).get(role)
        aliases[role] = str(target.version) if target is not None else None
        if target is None and holder is not None:
            mlflow_client.delete_registered_model_alias(name, role)
            changed.append(f"-{role}@{holder}")
        elif target is not None and holder != str(target.version):
            mlflow_client.set_registered_model_alias(name, role, target.version)
            changed.append(f"+{role}@{target.version}")
    holding = {tag: role for role, tag in roles.items() if tag}
    for tag, version in by_tag.items():
        status = version.tags.get(STATUS_TAG)
        new = holding.get(tag) or (RETIRED if status in ROLES else None)
        if new is not None and new != status:
            mlflow_client.set_model_version_tag(name, version.version, STATUS_TAG, new)
            mlflow_client.set_model_version_tag(name, version.version, REASON_TAG, _why(new))
            changed.append(f"{STATUS_TAG}={new}@{version.version}")
    return {"aliases": aliases, "changed": changed}


def aliases_of(mlflow_client, name: str) -> dict[str, str] | None:
    """The registered model's aliases (alias -> version); None when there is no such model.
    Any other failure (MLflow unreachable) is raised."""
    from mlflow.exceptions import MlflowException

    try:
        found = mlflow_client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return {alias: str(version) for alias, version in (found.aliases or {}).items()}


def _why(status: str) -> str:
    if status == RETIRED:
        return "no longer holds a Vigil pointer"
    return f"Vigil's {status} model"


def warn_on_error(result: dict | None) -> None:
    """Tell the operator on stderr when the mirror failed (the command itself succeeded)."""
    import typer

    if result and "error" in result:
        typer.echo(
            f"warning: MLflow aliases not updated ({result['error']}); they catch up at the "
            "next change or follow-mlflow pass",
            err=True,
        )
