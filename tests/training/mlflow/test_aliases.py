"""Aliases follow Vigil's pointers: promotion, rollback, shadow and canary, and a change made
while MLflow was unreachable appears at the next reconciliation."""

from __future__ import annotations

import pytest

from tests.training.mlflow.test_source import data, linear  # noqa: F401
from tests.training.mlflow.test_tracking import _production_outcome


def _aliases(mlflow_client, name="vigil-model") -> dict[str, str]:
    return {a: str(v) for a, v in mlflow_client.get_registered_model(name).aliases.items()}


def _status(mlflow_client, version: str) -> str:
    return mlflow_client.get_model_version("vigil-model", version).tags.get("vigil.status")


def test_aliases_follow_promotion_rollback_and_candidates(settings, data, linear):  # noqa: F811
    from training.mlflow.aliases import mirror
    from training.mlflow.store import client, store_for
    from training.mlflow.tracking import json_line
    from training.register import register_model
    from vigil.registry import Candidates, Registry

    first = json_line(settings, _production_outcome(settings), "train")["mlflow"]["version"]
    x, y = data
    outcome = register_model(linear, x, y, x.iloc[::3], y.iloc[::3], settings=settings)
    tag = outcome["model_tag"]
    registry = Registry(settings)
    record = registry.model(tag)
    from training.train import Outcome

    second = json_line(
        settings, Outcome(tag, record.metrics, False, outcome["reason"], True), "register"
    )["mlflow"]["version"]
    mlflow_client = client(store_for(settings))
    assert _aliases(mlflow_client) == {"production": first}

    Candidates(registry).start(tag, "shadow")
    mirror(settings)
    assert _aliases(mlflow_client) == {"production": first, "shadow": second}
    assert _status(mlflow_client, second) == "shadow"

    Candidates(registry).stop("shadow")
    Candidates(registry).start(tag, "canary", 10.0)
    mirror(settings)
    assert _aliases(mlflow_client) == {"production": first, "canary": second}

    Candidates(registry).stop("canary")
    registry.promote(tag)
    mirror(settings)
    assert _aliases(mlflow_client) == {"production": second}
    assert _status(mlflow_client, second) == "production"
    assert _status(mlflow_client, first) == "retired"

    registry.rollback()
    mirror(settings)
    assert _aliases(mlflow_client) == {"production": first}
    assert _status(mlflow_client, second) == "retired"


def test_a_change_made_while_mlflow_was_down_appears_once_it_is_back(settings, monkeypatch):
    from tests.conftest import free_port
    from training.mlflow.aliases import mirror
    from training.mlflow.store import client, store_for
    from training.mlflow.tracking import json_line
    from vigil.settings import get_settings

    version = json_line(settings, _production_outcome(settings), "train")["mlflow"]["version"]
    mlflow_client = client(store_for(settings))
    mlflow_client.delete_registered_model_alias("vigil-model", "production")  # drifted by hand
    down = get_settings(mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}")
    assert "error" in mirror(down)
    assert _aliases(mlflow_client) == {}
    back = mirror(settings)
    assert back.get("aliases", {}).get("production") == version, back
    assert _aliases(mlflow_client) == {"production": version}


@pytest.mark.parametrize("uri", ["off"])
def test_no_mirror_when_mlflow_is_off(settings, monkeypatch, uri):
    from training.mlflow.aliases import mirror
    from vigil.settings import get_settings

    assert mirror(get_settings(mlflow_tracking_uri=uri)) is None
