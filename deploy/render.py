"""Deprecated alias of ``vigil render k8s`` (kept for this release)."""

import sys

import typer

from vigil.render.k8s import main

if __name__ == "__main__":
    sys.exit(typer.run(main))
