"""Deprecated alias of ``vigil traffic`` (kept for this release)."""

import typer

from vigil.stack.traffic import main

if __name__ == "__main__":
    typer.run(main)
