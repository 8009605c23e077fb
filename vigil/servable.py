"""Whether this build can serve a saved model, and why a load failed, in a few words.

A promotion that the replicas cannot load leaves them serving the old model while the monitor
checks the new one on no rows; ``training.promote`` asks ``why_not_servable`` first (in the
core, so training never imports the service, which counts its failed loads here too). The
replicas count each failed load under one of ``LOAD_FAILURE_REASONS``
(``vigil_model_load_failures_total``).
"""

from __future__ import annotations

from vigil.registry.store import ModelBundle

# Bounded label values of vigil_model_load_failures_total{reason}.
LOAD_FAILURE_REASONS = (
    "not_servable",  # VIGIL_INFERENCE=onnx and no verified ONNX artifact
    "integrity",  # bytes that do not match their recorded sha256
    "signature",  # VIGIL_REQUIRE_SIGNED_MODELS and no valid signature
    "unpickle",  # a module or class this build lacks, or a pickle it cannot read
    "registry",  # the registry could not be read
    "other",
)


def failure_reason(exc: BaseException) -> str:
    from vigil.inference import NotServable
    from vigil.registry.artifacts import ArtifactIntegrityError
    from vigil.registry.signing import ModelSignatureError
    from vigil.registry.store import RegistryError

    if isinstance(exc, NotServable):
        return "not_servable"
    if isinstance(exc, ModelSignatureError):
        return "signature"
    if isinstance(exc, ArtifactIntegrityError):
        return "integrity"
    if isinstance(exc, RegistryError):
        return "registry"
    if isinstance(exc, ImportError | AttributeError | EOFError) or "pickle" in str(exc).lower():
        return "unpickle"
    return "other"


def version_mismatch(contract: dict) -> str | None:
    """Which library the model was trained with in another version than this build's (a
    scikit-learn pickle is only supported by the version that wrote it)."""
    import sklearn

    trained = (contract.get("versions") or {}).get("scikit-learn")
    if trained is not None and trained != sklearn.__version__:
        return f"trained with scikit-learn {trained}, this build has {sklearn.__version__}"
    return None


def why_not_servable(bundle: ModelBundle, inference: str) -> str | None:
    """None when a replica of this build, with ``VIGIL_INFERENCE=inference``, would load
    ``bundle``; otherwise why not. Loads it as a replica does (blocking)."""
    from vigil.inference import load_inference

    mismatch = version_mismatch(bundle.contract)
    if mismatch:
        return f"version_mismatch: {mismatch}"
    try:
        load_inference(bundle, inference)
    except Exception as exc:
        return f"{failure_reason(exc)}: {type(exc).__name__}: {exc}"
    return None
