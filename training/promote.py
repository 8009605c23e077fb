"""Make a saved model production, or roll back to the previous production model, in the
registry every replica reads (they follow within seconds).

python -m training.promote vigil-model:<version>
python -m training.promote --rollback
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
) -> None:
    """Point production at TAG (or back at the previous model); the service follows live."""
    from vigil.registry import InvalidTag, NoProductionModel, Registry, RegistryError, UnknownModel
    from vigil.settings import get_settings

    if (tag is None) == (not rollback):
        typer.echo("error: give a TAG or --rollback, not both", err=True)
        raise typer.Exit(2)
    registry = Registry(get_settings())
    try:
        # One locked transaction each: concurrent promotions and rollbacks cannot interleave.
        if rollback:
            tag = registry.rollback()
        else:
            registry.promote(tag)
        history = registry.history()
    except (NoProductionModel, InvalidTag, UnknownModel, RegistryError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    last = history[-1] if history else None
    previous = last.previous if last is not None and last.tag == tag else None
    typer.echo(json.dumps({"production": tag, "previous": previous}))


if __name__ == "__main__":
    sys.exit(typer.run(main))
