"""Model signatures: training signs, every loader verifies before reading the model; with
VIGIL_REQUIRE_SIGNED_MODELS an unsigned or wrongly signed model is refused."""

from __future__ import annotations

import pytest

from tests.support.registry import corrupt_artifact
from vigil.registry.signing import SIGNATURE, keygen
from vigil.registry.store import PIPELINE, ModelSignatureError, Registry
from vigil.settings import get_settings


@pytest.fixture(scope="module")
def source(trained_home_template):
    return Registry(get_settings(home=trained_home_template)).load_production()


def _save(settings, source) -> str:
    return Registry(settings).save(source.pipeline, source.contract, source.reference)


def test_signed_models_load_and_others_are_refused_when_required(tmp_path, source):
    private, public = keygen()
    other_private, _ = keygen()
    db = {"database_url": f"sqlite:///{tmp_path / 'registry.sqlite3'}"}
    trainer = get_settings(home=tmp_path / "trainer", model_signing_key=private, **db)
    intruder = get_settings(home=tmp_path / "intruder", model_signing_key=other_private, **db)
    signed = _save(trainer, source)
    unsigned = _save(get_settings(home=tmp_path / "plain", **db), source)
    forged = _save(intruder, source)
    assert SIGNATURE in Registry(trainer).model(signed).artifacts

    strict = Registry(
        get_settings(
            home=tmp_path / "replica", model_verify_key=public, require_signed_models=True, **db
        )
    )
    assert strict.load(signed).pipeline is not None
    with pytest.raises(ModelSignatureError, match="not signed"):
        strict.load(unsigned)
    with pytest.raises(ModelSignatureError, match="does not verify"):
        strict.load(forged)
    # Someone with database access swaps an artifact of the signed model: the manifest no
    # longer matches its signature, refused before any byte of it is read.
    tampered = _save(trainer, source)
    corrupt_artifact(trainer, tampered, PIPELINE)
    with pytest.raises(ModelSignatureError, match="does not verify"):
        strict.load(tampered)

    lenient = Registry(get_settings(home=tmp_path / "lenient", model_verify_key=public, **db))
    assert lenient.load(unsigned).tag == unsigned  # allowed unless required (the default)
    with pytest.raises(ModelSignatureError):
        lenient.load(forged)  # a signature that does not verify is never accepted
    no_key = Registry(get_settings(home=tmp_path / "nokey", require_signed_models=True, **db))
    with pytest.raises(ModelSignatureError, match="VIGIL_MODEL_VERIFY_KEY is not"):
        no_key.load(signed)
