"""Champion and challenger from MLflow: ``training.models follow-mlflow``.

Each pass reads two aliases of a registered model. A ``@challenger`` version not seen before
is imported (``register --from``'s checks, production's reference and trusted holdout) and
started as the shadow, or as a canary. A ``@champion`` version not seen before is imported,
gated, compared with production on the trusted holdout and promoted with compare-and-set: if
production changed meanwhile the follower stands down (exit 3 with ``--once``), as it
refuses a model that fails the gate, writing the reason to the version's tags
(``vigil.status`` = ``refused``, ``vigil.reason``). What a version was handled as is kept in
its own tags (``vigil.follow.champion``, ``vigil.follow.challenger``), so a restarted
follower does not act twice; a pass that cannot reach MLflow changes nothing and the next one
retries. Every pass also reconciles the ``production``/``shadow``/``canary`` aliases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from training.mlflow.store import MODEL_TAG, REASON_TAG, STATUS_TAG, client, error_line, store_for
from training.mlflow.tracking import record

FOLLOWED = "vigil.follow."
# follow-mlflow's exit code when production changed under a promotion (as training.promote).
CONFLICT_EXIT = 3


@dataclass(frozen=True)
class FollowOptions:
    model: str
    champion: str = "champion"
    challenger: str = "challenger"
    # "shadow" or ("canary", percent)
    mode: str = "shadow"
    percent: float = 0.0
    trust: tuple[str, ...] = ()
    trust_pickle: bool = False


@dataclass
class Pass:
    """What one pass did: per alias, the version seen and what happened to it."""

    actions: dict[str, dict[str, Any]] = field(default_factory=dict)
    conflict: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"actions": self.actions}
        if self.error:
            out["error"] = self.error
        return out


def parse_mode(text: str) -> tuple[str, float]:
    """``shadow`` or ``canary:P`` (0 < P <= 100) as (mode, percent); ValueError otherwise."""
    if text == "shadow":
        return "shadow", 0.0
    kind, _, percent = text.partition(":")
    if kind == "canary" and percent:
        value = float(percent)
        if 0 < value <= 100:
            return "canary", value
    raise ValueError(f"--challenger-as {text!r}: expected shadow or canary:P (0 < P <= 100)")


def follow_once(settings, options: FollowOptions) -> Pass:
    """One pass: challenger first (a shadow needs the production it is judged against),
    then champion, then the aliases' reconciliation."""
    from training.mlflow.aliases import aliases_of, reconcile

    done = Pass()
    store = store_for(settings)
    if store is None:
        done.error = "MLflow is off (VIGIL_MLFLOW_TRACKING_URI=off)"
        return done
    try:
        mlflow_client = client(store)
        aliases = aliases_of(mlflow_client, options.model) or {}
        for role, alias in (("challenger", options.challenger), ("champion", options.champion)):
            version = aliases.get(alias)
            if version is None:
                continue
            seen = mlflow_client.get_model_version(options.model, version)
            if seen.tags.get(FOLLOWED + role):
                continue
            action = _act(settings, mlflow_client, options, role, alias, seen)
            done.actions[role] = action
            done.conflict |= bool(action.get("conflict"))
        reconcile(settings, store, mlflow_client)
    except Exception as exc:  # MLflow or the registry unreachable: the next pass retries
        done.error = error_line(exc)
    return done


def _act(settings, mlflow_client, options, role, alias, seen) -> dict[str, Any]:
    from training.model_file import BadModel

    name, version = options.model, str(seen.version)
    action: dict[str, Any] = {"version": version, "alias": alias}
    try:
        outcome = _import(settings, options, name, version, alias, promote=role == "champion")
    except BadModel as exc:
        _mark(mlflow_client, name, version, role, status="refused", reason=str(exc))
        return {**action, "status": "refused", "reason": str(exc)}
    action["model_tag"] = outcome.model_tag
    tags = {MODEL_TAG: outcome.model_tag}
    if role == "challenger":
        status, reason = _start_candidate(settings, options, outcome.model_tag)
    elif outcome.promoted:
        status, reason = "production", f"promoted by follow-mlflow from @{alias}"
        _end_shadow_of(settings, seen.tags.get(MODEL_TAG))
    else:
        status, reason = "refused", outcome.reason or "not promoted"
        action["conflict"] = outcome.conflict
    _mark(mlflow_client, name, version, role, status=status, reason=reason, **tags)
    action["mlflow"] = record(settings, outcome, "follow-mlflow")
    return {**action, "status": status, "reason": reason}


def _import(settings, options, name: str, version: str, alias: str, *, promote: bool):
    """The version registered in Vigil with production's reference and trusted holdout."""
    from training.mlflow.source import load_from
    from training.model_file import BadModel
    from training.policy import DEFAULT_GATE
    from training.register import register_loaded

    reference, trusted = _production_data(settings)
    model, source = load_from(
        settings, f"models:/{name}/{version}", reference[0],
        trust=options.trust, trust_pickle=options.trust_pickle,
    )  # fmt: skip
    source["mlflow"]["alias"] = alias
    if trusted is None:
        raise BadModel("production has no trusted holdout to judge it on")
    return register_loaded(
        model, reference, trusted, task="auto", promote=promote, settings=settings,
        gate=DEFAULT_GATE, source=source,
    )  # fmt: skip


def _production_data(settings):
    """((features, labels), (holdout features, labels) or None) of the production model."""
    import pandas as pd

    from vigil.registry import Registry, holdout
    from vigil.registry.store import LABEL_COLUMN

    production = Registry(settings).load_production()
    schema = production.schema
    features = production.reference[schema.names]
    labels = production.reference[LABEL_COLUMN]
    if schema.classes:  # the reference keeps class labels as text
        by_text = {str(c): c for c in schema.classes}
        labels = labels.map(lambda text: by_text.get(text, text))
    labels = pd.Series(labels.to_numpy(), name=schema.target or "target")
    return (features, labels), holdout.from_contract(production.contract)


def _start_candidate(settings, options, tag: str) -> tuple[str, str]:
    """Start ``tag`` as the shadow or canary (replacing whatever candidate ran)."""
    from vigil.registry import Candidates, Registry
    from vigil.servable import why_not_servable

    registry = Registry(settings)
    problem = why_not_servable(registry.load(tag), settings.inference)
    if problem:
        return "refused", f"this build cannot serve it: {problem}"
    candidates = Candidates(registry)
    misfit = candidates.misfit(tag)
    if misfit:
        return "refused", f"it does not fit production: {misfit}"
    running = candidates.current()
    if running.active:
        candidates.stop(running.mode, by="follow-mlflow")
    candidates.start(tag, options.mode, options.percent, by="follow-mlflow")
    return options.mode, f"started as the {options.mode} by follow-mlflow"


def _end_shadow_of(settings, tag: str | None) -> None:
    """The promoted version's earlier import, if it still runs as the candidate, ends."""
    from vigil.registry import Candidates, Registry

    if not tag:
        return
    candidates = Candidates(Registry(settings))
    running = candidates.current()
    if running.active and running.tag == tag:
        candidates.stop(running.mode, by="follow-mlflow")


def _mark(mlflow_client, name, version, role, *, status, reason, **extra) -> None:
    tags = {FOLLOWED + role: "done", STATUS_TAG: status, REASON_TAG: reason[:5000], **extra}
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, version, key, value)


def run(settings, options: FollowOptions, *, once: bool, interval: float, echo) -> int:
    """Pass after pass, ``interval`` seconds apart, each printed as one JSON line through
    ``echo``; with ``once`` a single pass, whose exit code is 3 when a promotion stood down
    on a concurrent change, 2 when MLflow or the registry could not be read, else 0."""
    import json
    import time

    while True:
        done = follow_once(settings, options)
        echo(json.dumps(done.to_dict()))
        if once:
            return CONFLICT_EXIT if done.conflict else 2 if done.error else 0
        time.sleep(interval)
