"""Settings: VIGIL_ variables, defaults, and .env.example kept in step with them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from vigil.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_follow_the_contract(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in list(__import__("os").environ):
        if name.startswith("VIGIL_"):
            monkeypatch.delenv(name)
    s = get_settings()
    assert (s.host, s.port, s.monitor_port) == ("127.0.0.1", 3000, 9108)
    assert (s.drift_interval_seconds, s.drift_window_rows) == (300, 1000)
    assert (s.drift_alpha, s.drift_share, s.max_batch_rows) == (0.01, 0.5, 1000)
    assert s.api_key is None and s.strict_categories is False
    assert s.resolved_database_url == f"sqlite:///{tmp_path / '.vigil' / 'inference.sqlite3'}"
    assert s.bentoml_home == tmp_path / ".vigil" / "bentoml"


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("VIGIL_PORT", "4000")
    monkeypatch.setenv("VIGIL_API_KEY", "s3cret")
    monkeypatch.setenv("VIGIL_DATABASE_URL", "postgresql://x@h/db")
    s = get_settings()
    assert s.port == 4000 and s.api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)
    assert s.resolved_database_url == "postgresql://x@h/db"


def test_env_file_is_read_from_the_working_directory_unless_told_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv("VIGIL_PORT", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("VIGIL_PORT=4100\n")
    other = tmp_path / "prod.env"
    other.write_text("VIGIL_PORT=4200\n")

    monkeypatch.delenv("VIGIL_ENV_FILE", raising=False)
    assert get_settings().port == 4100
    monkeypatch.setenv("VIGIL_ENV_FILE", str(other))
    assert get_settings().port == 4200
    monkeypatch.setenv("VIGIL_ENV_FILE", "")  # none at all
    assert get_settings().port == 3000
    monkeypatch.setenv("VIGIL_PORT", "4300")  # the environment wins over any file
    monkeypatch.setenv("VIGIL_ENV_FILE", str(other))
    assert get_settings().port == 4300


def test_bad_values_are_refused(monkeypatch):
    monkeypatch.setenv("VIGIL_DRIFT_ALPHA", "2")
    with pytest.raises(ValidationError, match="drift_alpha"):
        get_settings()
    monkeypatch.delenv("VIGIL_DRIFT_ALPHA")
    # Prediction ids number a request's instances with four hex digits.
    monkeypatch.setenv("VIGIL_MAX_BATCH_ROWS", "65537")
    with pytest.raises(ValidationError, match="max_batch_rows"):
        get_settings()


def test_env_example_names_only_real_settings():
    names = {
        line.lstrip("# ").split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line.lstrip("# ").startswith("VIGIL_") and "=" in line
    }
    fields = {f"VIGIL_{name.upper()}" for name in Settings.model_fields}
    assert names <= fields, names - fields
    assert fields - names <= {"VIGIL_UNSAFE_DISABLE_LOGGING"}, fields - names


@pytest.mark.parametrize("value", ["", "   "])
def test_an_api_key_set_but_empty_is_refused(monkeypatch, value):
    from pydantic import ValidationError

    monkeypatch.setenv("VIGIL_API_KEY", value)
    with pytest.raises(ValidationError, match="VIGIL_API_KEY is set but empty"):
        get_settings()


def test_settings_problem_is_one_line_naming_the_variables(monkeypatch):
    from pydantic import ValidationError

    from vigil.settings import settings_problem

    monkeypatch.setenv("VIGIL_API_KEY", "")
    monkeypatch.setenv("VIGIL_MAX_BATCH_ROWS", "0")
    with pytest.raises(ValidationError) as caught:
        get_settings()
    line = settings_problem(caught.value)
    assert "\n" not in line
    assert line.startswith("invalid settings: ")
    assert "VIGIL_API_KEY is set but empty" in line and "VIGIL_MAX_BATCH_ROWS: " in line
