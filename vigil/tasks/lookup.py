"""The tasks by name: a saved model's task from its contract, and every metric either reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vigil.tasks.base import CLASSIFICATION, REGRESSION, TASKS, Task
from vigil.tasks.classification import CLASSIFIER
from vigil.tasks.regression import REGRESSOR

_BY_NAME = {CLASSIFICATION: CLASSIFIER, REGRESSION: REGRESSOR}


def get_task(name: str) -> Task:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None


def task_for(contract: Mapping[str, Any]) -> Task:
    """The task of a saved model; models saved before tasks existed are classifiers."""
    return get_task(contract.get("task") or CLASSIFICATION)


# Every metric either task reports: gauges and dashboards list them once.
QUALITY_METRICS = tuple(dict.fromkeys(CLASSIFIER.metrics + REGRESSOR.metrics))
