"""The ``vigil`` command."""

from vigil.cli.app import main

__all__ = ["main"]
