"""GET /model's card: the contract a caller may see."""

from __future__ import annotations

from service.routes import model_card


def test_model_card_shows_no_training_path_and_no_stored_holdout():
    contract = {
        "schema": {"features": []},
        "metrics": {"accuracy": 0.9},
        "dataset_sha256": "ab" * 32,
        "dataset_source": "/home/alice/secret-project/customers.csv",
        "holdout": {"rows": [[1, 2, 3]]},
        "params": {"n_estimators": 100},
    }
    card = model_card(contract, "vigil-model:abc")
    assert card["dataset_source"] == "customers.csv"
    assert "holdout" not in card
    assert "/home/alice" not in repr(card)
    assert card["params"] == {"n_estimators": 100}
    assert card["model_version"] == card["tag"] == "vigil-model:abc"
    assert card["dataset_sha256"] == "ab" * 32


def test_how_the_model_was_made_is_left_out_of_the_card_for_callers_without_the_key():
    contract = {
        "schema": {"features": []},
        "metrics": {"accuracy": 0.9},
        "params": {"n_estimators": 100},
        "lineage": {"parent": "vigil-model:old"},
        "git_commit": "abc123",
        "versions": {"sklearn": "1.9.1"},
    }
    card = model_card(contract, "vigil-model:abc", full=False)
    assert not {"params", "lineage", "git_commit", "versions"} & set(card)
    assert card["metrics"] == {"accuracy": 0.9} and card["tag"] == "vigil-model:abc"
    assert model_card(contract, "vigil-model:abc")["lineage"] == {"parent": "vigil-model:old"}
