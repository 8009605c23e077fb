"""Vigil's core, shared by the service, training and the monitor: its public API.

Each name is imported on first use (``vigil.lazy``), so ``import vigil`` does no work. The
packages beneath hold the rest: ``vigil.log`` (the inference log), ``vigil.registry`` (models,
candidates, artifacts, signatures), ``vigil.store`` (the database: engine, migrations,
roles), ``vigil.tasks`` (what differs by task), ``vigil.estimate`` (quality without labels).
"""

from vigil.lazy import lazy_exports

_EXPORTS = {
    "Settings": ".settings",
    "get_settings": ".settings",
    "FeatureSchema": ".schema",
    "InferenceLog": ".log",
    "InferenceLogError": ".log",
    "LogSchemaError": ".log",
    "ShadowLog": ".log",
    "Registry": ".registry",
    "ModelBundle": ".registry",
    "RegistryError": ".registry",
    "Candidates": ".registry",
    "Task": ".tasks",
    "Outputs": ".tasks",
    "CLASSIFIER": ".tasks",
    "REGRESSOR": ".tasks",
    "task_for": ".tasks",
    "infer_task": ".tasks",
    "QualityEstimator": ".estimate",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
