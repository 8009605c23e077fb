"""A service with VIGIL_REQUIRE_SIGNED_MODELS refuses an unsigned or wrongly signed model, at
start and at a rollout (counted as a load failure with reason "signature")."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from service.follow import PointerFollower
from service.metrics import LoadFailureMetrics
from service.worker import WorkerState
from tests.support.prom import total
from vigil.registry.signing import keygen
from vigil.registry.store import ModelSignatureError, Registry
from vigil.settings import get_settings


def test_a_strict_service_serves_only_signed_models(trained_home):
    private, public = keygen()
    forger, _ = keygen()
    plain = Registry(get_settings(home=trained_home))
    source = plain.load_production()
    strict = get_settings(
        home=trained_home, model_verify_key=public, require_signed_models=True, inference="auto"
    )
    prom = CollectorRegistry()
    failures = LoadFailureMetrics(prom)

    # The production model is unsigned (trained before the key existed): refused at start.
    with pytest.raises(ModelSignatureError, match="not signed"):
        WorkerState.start(strict, prom, on_load_failure=failures.record)

    def saved_by(key: str) -> str:
        registry = Registry(get_settings(home=trained_home, model_signing_key=key))
        return registry.save(source.pipeline, source.contract, source.reference)

    signed, forged = saved_by(private), saved_by(forger)
    plain.promote(signed)
    runtime = WorkerState.start(strict, prom, on_load_failure=failures.record)
    assert runtime.bundle.tag == signed
    reloader = PointerFollower(strict, lambda: runtime, on_load_failure=failures.record)

    async def rollout_to_forged() -> None:
        assert not await reloader.check()
        plain.promote(forged)
        assert not await reloader.check()  # refused: the signed model keeps serving
        assert runtime.bundle.tag == signed
        await runtime.close()

    asyncio.run(rollout_to_forged())
    text = generate_latest(prom).decode()
    failed = "vigil_model_load_failures_total"
    assert total(text, failed, model_version=source.tag, reason="signature") == 1
    assert total(text, failed, model_version=forged, reason="signature") == 1
