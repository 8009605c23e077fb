"""What differs by model task, a classifier's or a regressor's: the answer's keys, what the
log stores, the quality metrics and which way is better, the gate and the promotion rule.

``base`` declares the ``Task`` interface, ``classification`` and ``regression`` are the two
tasks, ``lookup`` finds a model's task by name, ``labels`` holds the labels' normal form."""

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
    "CLASSIFIER": ".classification",
    "REGRESSOR": ".regression",
    "QUALITY_METRICS": ".lookup",
    "get_task": ".lookup",
    "task_for": ".lookup",
    "infer_task": ".base",
    "top_class": ".classification",
    "classification_metrics": ".classification",
    "regression_metrics": ".regression",
    "Label": ".labels",
    "label_sort_key": ".labels",
    "plain_label": ".labels",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
