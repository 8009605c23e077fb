"""Subcommands loaded when they run, so ``vigil --help`` does not import scikit-learn,
BentoML and Evidently to print one line per command.

A :class:`LazyCommand` carries what the top-level help shows (name, one line, panel); the real
command, an existing Typer app or function, is imported only when it is invoked (or completed).
"""

from __future__ import annotations

import importlib

import typer
import typer.main

# Typer 0.29 runs on its own copy of click: its classes, not the click package's.
from typer import _click as click
from typer.core import TyperCommand, TyperGroup

from vigil.cli.shadowing import TOP_LEVEL


def load_click(target: str, subcommand: str | None = None) -> click.Command:
    """``module:attr`` as a click command: a Typer app, a function (as ``typer.run`` would run
    it), or one command of a Typer app (``subcommand``)."""
    module_name, _, attr = target.partition(":")
    obj = getattr(importlib.import_module(module_name), attr)
    if isinstance(obj, typer.Typer):
        command = typer.main.get_command(obj)
    elif isinstance(obj, click.Command):
        command = obj
    else:
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        single.command()(obj)
        command = typer.main.get_command(single)
    if subcommand is not None:
        assert isinstance(command, TyperGroup), f"{target} has no subcommands"
        found = command.commands.get(subcommand)
        assert found is not None, f"{target} has no command {subcommand!r}"
        command = found
    return command


class LazyCommand(TyperCommand):
    """Stands in for ``target`` in a group; hands over to it as soon as it parses arguments."""

    def __init__(
        self,
        name: str,
        target: str,
        *,
        help: str,
        panel: str | None = None,
        subcommand: str | None = None,
        epilog: str | None = None,
        needs: str | None = None,
    ) -> None:
        super().__init__(
            name, help=help, short_help=help, add_help_option=False, rich_help_panel=panel
        )
        self.target = target
        self.subcommand = subcommand
        self.examples = epilog
        self.needs = needs  # the install that provides a missing optional import

    def load(self) -> click.Command:
        try:
            command = load_click(self.target, self.subcommand)
        except ModuleNotFoundError as exc:
            if self.needs is None or exc.name is None or exc.name.split(".")[0] in TOP_LEVEL:
                raise
            typer.echo(f"error: `{self.name}` needs the Python package {exc.name}: {self.needs}",
                       err=True)  # fmt: skip
            raise typer.Exit(1) from None
        command.name = self.name
        command.short_help = command.short_help or self.help
        if self.examples:
            command.epilog = self.examples
        return command

    def make_context(self, info_name, args, parent=None, **extra):
        return self.load().make_context(info_name, args, parent=parent, **extra)

    def get_help(self, ctx: click.Context) -> str:  # only if asked without parsing (rare)
        return self.load().get_help(ctx)


class LazyGroup(TyperGroup):
    """A group of :class:`LazyCommand` (``vigil render``, say)."""

    def __init__(self, name: str, commands: list[LazyCommand], *, help: str, panel: str):
        super().__init__(
            name=name,
            commands={c.name: c for c in commands},
            help=help,
            short_help=help,
            no_args_is_help=True,
            rich_markup_mode="rich",
            rich_help_panel=panel,
        )

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # the table's order, not alphabetical
