"""``vigil``: one command for everything Vigil does. Each subcommand is the module command it
replaces (same options, output and exit codes), loaded only when it runs."""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperGroup

from vigil.cli.commands import commands
from vigil.cli.shadowing import shadowing


class VigilGroup(TyperGroup):
    """Typer's group (rich help, completion) holding the lazily loaded subcommands."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for sub in commands():
            self.add_command(sub)

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands)  # the table's order, grouped by panel


app = typer.Typer(
    name="vigil",
    cls=VigilGroup,
    help="Vigil: serve a scikit-learn model, watch its inputs drift, get alerted. "
    "Settings come from VIGIL_* variables or .env (vigil render config-docs lists them).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"vigil {version('vigil')}")
        raise typer.Exit()


@app.callback()
def root(
    _version_flag: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    problem = shadowing()
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="vigil")
