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
