"""Live model quality: the production model's latest labeled predictions scored like training.

Scored by the model's task (``vigil.tasks``), as the held-out split was at training, so the live
figures compare like for like with ``vigil_model_quality_reference``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vigil.schema import FeatureSchema
from vigil.tasks import CLASSIFIER, Task


def live_quality(
    log,
    model_version: str,
    schema: FeatureSchema,
    n: int,
    reference_labels: pd.Series | None = None,
    alpha: float = 0.01,
    task: Task = CLASSIFIER,
) -> dict | None:
    """Quality over the newest ``n`` labeled predictions; None before any label exists.

    With ``reference_labels`` (the training labels) it also tests label drift: whether the
    labels of the labeled rows differ from training (the task's prediction-drift test: the
    class mix by chi-square, a regressor's values by KS) at ``alpha``.
    """
    labeled = log.labeled_count(model_version)
    if not labeled:
        return None
    frame = log.labeled(model_version, n)
    if frame.empty:
        return None
    out = task.score_logged(frame, schema.classes)
    out["labeled_fraction"] = round(labeled / log.count(model_version), 6)
    delay = (frame["received_at"] - frame["created_at"]).to_numpy(dtype=float)
    out["label_delay_seconds_median"] = round(float(np.median(delay)), 3)
    out["label_delay_seconds_p90"] = round(float(np.quantile(delay, 0.9)), 3)
    if reference_labels is not None and len(reference_labels):
        from monitoring.detect import pvalue_by_method

        method = task.prediction_drift_method
        p_value = pvalue_by_method(
            method, task.label_values(reference_labels), task.label_values(frame["label"])
        )
        out["label_drift"] = {
            "method": method,
            "score_kind": "p_value",
            "score": p_value,
            "threshold": alpha,
            "drifted": bool(p_value < alpha),
        }
    return out
