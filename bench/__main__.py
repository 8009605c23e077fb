"""``make bench``: every benchmark section in one invocation; figures printed and saved.

Benchmarks are not tests: they measure, print a table and write JSON under ``--out``.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Annotated

import typer

SECTIONS = (
    "service",
    "inference",
    "drift",
    "log",
    "registry",
    "hostile",
    "estimate",
    "candidate",
    "protocol",
)


def main(
    out: Annotated[Path, typer.Option(help="Folder for the JSON results")] = Path("bench-results"),
    only: Annotated[
        list[str] | None, typer.Option(help=f"Run only these sections: {', '.join(SECTIONS)}")
    ] = None,
) -> None:
    """Benchmark the prediction service, the drift check, the inference log, the registry
    fetch, the service under hostile load, the quality estimates against the truth, a shadow's
    cost, and the Open Inference Protocol against /predict."""
    import importlib

    out.mkdir(parents=True, exist_ok=True)
    chosen = only or list(SECTIONS)
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        typer.echo(f"error: unknown sections {sorted(unknown)}", err=True)
        raise typer.Exit(2)
    summary = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
    }
    for name in chosen:
        typer.echo(f"\n== {name} ==")
        module = importlib.import_module(f"bench.{name}_bench")
        summary[name] = module.run(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    typer.echo(f"\nresults written to {out}/")


if __name__ == "__main__":
    typer.run(main)
