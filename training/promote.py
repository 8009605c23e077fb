"""Make a saved model production, or roll back to the previous production model, in the
registry every replica reads (they follow within seconds).

python -m training.promote vigil-model:<version> [--expect TAG|none] [--if-better]
python -m training.promote --rollback [--expect TAG|none]

``--expect``: the production model the operator decided from; if someone changed production
since, nothing is done and the exit is 3, naming who changed it and when.

A model that the service of this build cannot load (``VIGIL_INFERENCE=onnx`` and no ONNX
artifact, a module it lacks, another scikit-learn version, damaged bytes) is refused with
exit 2 and the reason, unless ``--force``: the replicas would keep serving the old model
while the monitor checks the new one.

A candidate promoted (``--if-better``, or TAG running as a shadow or canary) must fit
production as a candidate must (same task, same features, at least its categories): else exit
2 naming the difference, unless ``--force``; production's clients would get 400s.

``--if-better``: only when the monitor's latest verdict on TAG as a shadow or canary says
better, with at least ``VIGIL_CANDIDATE_MIN_LABELED_ROWS`` labeled rows behind it, and TAG
passes the offline gate (its held-out figures not worse than production's on the same data);
otherwise exit 1 printing the figures. The promotion expects the production model the verdict
was made against (exit 3 if it changed since). A running shadow or canary of TAG ends with it.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer


def main(
    tag: Annotated[str | None, typer.Argument(help="The model tag to make production")] = None,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Return to the previous production model")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Promote even a model this build cannot load, or a candidate that does not "
            "fit production",
        ),
    ] = False,
    expect: Annotated[
        str | None,
        typer.Option(
            "--expect",
            help="Act only if production is still this tag ('none': no production model)",
        ),
    ] = None,
    if_better: Annotated[
        bool,
        typer.Option(
            "--if-better",
            help="Only if the monitor's latest live verdict on TAG says better (exit 1 if not)",
        ),
    ] = False,
) -> None:
    """Point production at TAG (or back at the previous model); the service follows live."""
    from vigil.registry.store import (
        NO_PRODUCTION,
        InvalidTag,
        NoProductionModel,
        ProductionChanged,
        Registry,
        RegistryError,
        UnknownModel,
    )
    from vigil.servable import why_not_servable
    from vigil.settings import get_settings

    if (tag is None) == (not rollback):
        typer.echo("error: give a TAG or --rollback, not both", err=True)
        raise typer.Exit(2)
    if expect is not None and expect.lower() == "none":
        expect = NO_PRODUCTION
    settings = get_settings()
    registry = Registry(settings)
    try:
        # One locked transaction each: concurrent promotions and rollbacks cannot interleave,
        # and ``expect`` is checked under that lock.
        if rollback:
            tag = registry.rollback(expect=expect)
        else:
            if if_better:
                refusal, judged_against = _live_refusal(registry, tag, settings)
                if refusal is not None:
                    typer.echo(json.dumps(refusal))
                    raise typer.Exit(1)
                # Compare and set: production must still be the model the verdict beat.
                expect = expect or judged_against
            if not force:
                _refuse_misfit(registry, tag, if_better)
            problem = None if force else why_not_servable(registry.load(tag), settings.inference)
            if problem:
                typer.echo(
                    f"error: {tag} cannot be served by this build ({problem}); nothing done "
                    "(--force promotes it anyway)",
                    err=True,
                )
                raise typer.Exit(2)
            registry.promote(tag, expect=expect)
            if if_better:
                _end_candidate(registry, tag)
        history = registry.history()
    except ProductionChanged as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
    except (NoProductionModel, InvalidTag, UnknownModel, RegistryError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    last = history[-1] if history else None
    previous = last.previous if last is not None and last.tag == tag else None
    typer.echo(json.dumps({"production": tag, "previous": previous}))
    from training.mlflow.aliases import mirror, warn_on_error

    warn_on_error(mirror(settings))


def _refuse_misfit(registry, tag: str, if_better: bool) -> None:
    """Exit 2 when ``tag`` is promoted as a candidate (``--if-better``, or it runs as one)
    and does not fit production."""
    from vigil.registry.candidates import Candidates

    candidates = Candidates(registry)
    running = candidates.current()
    if not if_better and not (running.active and running.tag == tag):
        return
    problem = candidates.misfit(tag)
    if problem:
        typer.echo(f"error: {problem}; nothing done (--force promotes it anyway)", err=True)
        raise typer.Exit(2)


def _live_refusal(registry, tag: str, settings) -> tuple[dict | None, str | None]:
    """(why ``--if-better`` refuses ``tag``, with the figures it read, or None to go ahead;
    the production model the verdict was made against)."""
    from vigil.registry.candidates import Candidates

    verdict = Candidates(registry).latest_verdict(tag)
    least = settings.candidate_min_labeled_rows
    if verdict is None:
        reason = f"no live verdict on {tag}: run it as a shadow or canary first"
        return {"promoted": False, "model_version": tag, "reason": reason}, None
    figures = verdict.figures
    reason = None
    if verdict.labeled_rows < least:
        reason = f"{verdict.labeled_rows} labeled rows behind the verdict; at least {least} needed"
    elif verdict.better is not True:
        reason = "the paired test says " + (
            "worse" if verdict.better is False else "no significant difference (undecided)"
        )
    elif verdict.model_version != registry.production_tag():
        reason = f"the verdict was against {verdict.model_version}, no longer production"
    else:
        reason = _offline_gate(registry, tag)
    if reason is None:
        return None, verdict.model_version
    refusal = {"promoted": False, "model_version": tag, "reason": reason, "verdict": figures}
    return refusal, verdict.model_version


def _offline_gate(registry, tag: str) -> str | None:
    """The offline gate, from the figures saved with the models: TAG's held-out figures
    against its naive predictor's (when recorded), and against production's when both were
    measured on the same data (same dataset sha256)."""
    from vigil.tasks import task_for

    mine = registry.model(tag)
    task = task_for(mine.contract)
    naive = mine.contract.get("naive")
    if naive is None and "baseline_accuracy" in mine.contract:
        naive = {"accuracy": mine.contract["baseline_accuracy"]}
    if naive is not None:
        try:
            failed = task.gate(mine.metrics, naive, float(mine.contract.get("gate_minimum", 0.0)))
        except (KeyError, TypeError):
            failed = None  # figures not recorded: the paired live test stands alone
        if failed:
            return f"offline gate: {failed}"
    current = registry.production_tag()
    if current is None:
        return None
    theirs = registry.model(current)
    if mine.dataset_sha256 and mine.dataset_sha256 == theirs.dataset_sha256:
        worse = task.worse(mine.metrics, theirs.metrics)
        return f"offline gate: {worse}" if worse else None
    return None


def _end_candidate(registry, tag: str) -> None:
    from vigil.registry.candidates import Candidates

    candidates = Candidates(registry)
    running = candidates.current()
    if running.active and running.tag == tag:
        candidates.stop(running.mode)


if __name__ == "__main__":
    sys.exit(typer.run(main))
