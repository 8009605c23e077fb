"""What differs by model task, a classifier's or a regressor's: the answer's keys, what the
log stores, the quality metrics and which way is better, the gate and the promotion rule."""

from vigil.lazy import lazy_exports

_EXPORTS = {
    "Task": ".base",
    "Outputs": ".base",
    "PredictionSink": ".base",
    "BadLabel": ".base",
    "CLASSIFICATION": ".base",
    "REGRESSION": ".base",
    "TASKS": ".base",
    "MAX_CLASSES": ".base",
    "CLASSIFIER": ".base",
    "REGRESSOR": ".base",
    "QUALITY_METRICS": ".base",
    "get_task": ".base",
    "task_for": ".base",
    "infer_task": ".base",
    "top_class": ".base",
    "classification_metrics": ".base",
    "regression_metrics": ".base",
    "Label": ".labels",
    "label_sort_key": ".labels",
    "plain_label": ".labels",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
