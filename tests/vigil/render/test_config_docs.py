"""docs/configuration.md is generated from the settings object: every variable, its default."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from vigil.cli.app import app
from vigil.render import config_docs
from vigil.settings import Settings

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "docs" / "configuration.md"


def test_committed_reference_is_current():
    assert COMMITTED.read_text(encoding="utf-8") == config_docs.render(), (
        "docs/configuration.md is stale: run `vigil render config-docs` (make docs)"
    )


def test_every_setting_has_a_row_with_its_default_and_meaning():
    rows = {
        line.split("`")[1]: line.split(" | ")
        for line in config_docs.render().splitlines()
        if line.startswith("| `VIGIL_")
    }
    assert set(rows) == {f"VIGIL_{name.upper()}" for name in Settings.model_fields}
    assert rows["VIGIL_PORT"][1] == "`3000`" and rows["VIGIL_PORT"][2] == "≥ 1, ≤ 65535"
    assert rows["VIGIL_DATABASE_URL"][1] == "unset"
    assert rows["VIGIL_INFERENCE"][2] == "`auto` \\| `onnx` \\| `sklearn`"
    assert not [name for name, cells in rows.items() if not cells[3].strip(" |")]


def test_comments_make_meanings_and_sections():
    source = (
        "class S:\n"
        "    # Drift monitor.\n"
        "    # Listen port.\n"
        "    port: int = 1\n"
        "\n"
        "    # Two lines\n"
        "    # of meaning.\n"
        "    a: int = 2\n"
        "    b: int = 3\n"
    )
    described, sections = config_docs.comments(source)
    assert sections == {"port": "Drift monitor"}
    assert described == {"port": "Listen port.", "a": "Two lines of meaning.", "b": ""}


def test_check_fails_on_a_stale_file(tmp_path):
    stale = tmp_path / "configuration.md"
    stale.write_text("old\n")
    result = CliRunner().invoke(app, ["render", "config-docs", "--out", str(stale), "--check"])
    assert result.exit_code == 1
    assert CliRunner().invoke(app, ["render", "config-docs", "--out", str(stale)]).exit_code == 0
    assert stale.read_text() == config_docs.render()
