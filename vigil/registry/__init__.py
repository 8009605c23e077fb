"""The model registry: models and their contracts (``store``) in the database's tables
(``schema``), their artifacts by sha256 (``artifacts``), signed (``signing``); the candidate
tried on live traffic beside production (``candidates``)."""

from vigil.lazy import lazy_exports

_EXPORTS = {
    "Registry": ".store",
    "ModelBundle": ".store",
    "Pointer": ".store",
    "RegistryError": ".store",
    "RegistrySchemaError": ".store",
    "UnknownModel": ".store",
    "NoProductionModel": ".store",
    "ProductionChanged": ".store",
    "InvalidTag": ".store",
    "MissingModelCode": ".store",
    "PIPELINE": ".store",
    "SKOPS_PIPELINE": ".store",
    "NO_PRODUCTION": ".store",
    "ROLLBACK_DEPTH": ".store",
    "check_tag": ".store",
    "load_model_bytes": ".store",
    "Candidates": ".candidates",
    "Candidate": ".candidates",
    "CandidateConflict": ".candidates",
    "Verdict": ".candidates",
    "CANARY": ".candidates",
    "ArtifactIntegrityError": ".artifacts",
    "ArtifactStore": ".artifacts",
    "ModelSignatureError": ".signing",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
