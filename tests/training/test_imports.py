"""Training depends on the core, never on the service: the servability check it asks before a
promotion or a candidate start is the core's (``vigil.servable``)."""

from __future__ import annotations

import ast
from pathlib import Path

TRAINING = Path(__file__).resolve().parents[2] / "training"


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_training_never_imports_the_service():
    offending = {
        str(path.relative_to(TRAINING.parent)): sorted(
            m for m in imported_modules(path) if m == "service" or m.startswith("service.")
        )
        for path in sorted(TRAINING.rglob("*.py"))
    }
    offending = {path: mods for path, mods in offending.items() if mods}
    assert offending == {}
    assert len(list(TRAINING.rglob("*.py"))) > 5  # the walk found the package
