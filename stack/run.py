"""Deprecated alias of ``vigil run`` (kept for this release)."""

import typer

from vigil.stack.run import main

if __name__ == "__main__":
    typer.run(main)
