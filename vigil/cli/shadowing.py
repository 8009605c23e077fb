"""An installed Vigil owns four import names. A user's module of the same name in the working
directory would be imported instead of Vigil's by every ``python -m …`` process Vigil starts
(BentoML's workers among them), so it is refused up front, in one line, rather than found
later as a baffling import error or, worse, silently run."""

from __future__ import annotations

import importlib.machinery
import os
import sys
from pathlib import Path

TOP_LEVEL = ("vigil", "service", "training", "monitoring")


def _location(spec) -> Path | None:
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    return Path(spec.origin).resolve() if spec.origin else None


def shadowing(cwd: Path | None = None, path: list[str] | None = None) -> str | None:
    """The first of Vigil's import names that resolves to something other than Vigil's own
    package, as a one-line message with the fix; None when all four are Vigil's.

    The search path is the one a ``python -m`` child started in ``cwd`` sees: ``cwd`` first.
    """
    home = Path(__file__).resolve().parents[2]  # the directory that holds Vigil's packages
    cwd = (cwd or Path.cwd()).resolve()
    search = [str(cwd)] + [os.path.abspath(p or ".") for p in (sys.path if path is None else path)]
    for name in TOP_LEVEL:
        found = _location(importlib.machinery.PathFinder.find_spec(name, search))
        if found is not None and found != home / name:
            return (
                f"{found} shadows Vigil's `{name}` package (Vigil owns the import names "
                f"{', '.join(TOP_LEVEL)}): rename it, or run vigil from another directory"
            )
    return None
