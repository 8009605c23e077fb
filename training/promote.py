"""Make a saved model production, or roll back to the previous production model, in the
registry every replica reads (they follow within seconds).

python -m training.promote vigil-model:<version> [--expect TAG|none]
python -m training.promote --rollback [--expect TAG|none]

``--expect``: the production model the operator decided from; if someone changed production
since, nothing is done and the exit is 3, naming who changed it and when.

A model that the service of this build cannot load (``VIGIL_INFERENCE=onnx`` and no ONNX
artifact, a module it lacks, another scikit-learn version, damaged bytes) is refused with
exit 2 and the reason, unless ``--force``: the replicas would keep serving the old model
while the monitor checks the new one.
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
        bool, typer.Option("--force", help="Promote even a model this build cannot load")
    ] = False,
    expect: Annotated[
        str | None,
        typer.Option(
            "--expect",
            help="Act only if production is still this tag ('none': no production model)",
        ),
    ] = None,
) -> None:
    """Point production at TAG (or back at the previous model); the service follows live."""
    from service.servable import why_not_servable
    from vigil.registry import (
        NO_PRODUCTION,
        InvalidTag,
        NoProductionModel,
        ProductionChanged,
        Registry,
        RegistryError,
        UnknownModel,
    )
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
            problem = None if force else why_not_servable(registry.load(tag), settings.inference)
            if problem:
                typer.echo(
                    f"error: {tag} cannot be served by this build ({problem}); nothing done "
                    "(--force promotes it anyway)",
                    err=True,
                )
                raise typer.Exit(2)
            registry.promote(tag, expect=expect)
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


if __name__ == "__main__":
    sys.exit(typer.run(main))
