"""Live model quality: the production model's latest labeled predictions scored like training.

Scored by ``vigil.scoring``, as the held-out split was at training, so the live figures compare
like for like with ``vigil_model_quality_reference``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vigil.schema import FeatureSchema, _plain
from vigil.scoring import QUALITY_METRICS, classification_metrics


def _label(value: Any) -> str:
    # 1, 1.0 and "1" from JSON are the same class.
    return str(_plain(value)) if value is not None else ""


def live_quality(
    log,
    model_version: str,
    schema: FeatureSchema,
    n: int,
    reference_labels: pd.Series | None = None,
    alpha: float = 0.01,
) -> dict | None:
    """Quality over the newest ``n`` labeled predictions; None before any label exists.

    With ``reference_labels`` (the training labels) it also tests label drift: whether the
    class mix of the labeled rows differs from training, a chi-square test at ``alpha``.
    """
    labeled = log.labeled_count(model_version)
    if not labeled:
        return None
    frame = log.labeled(model_version, n)
    if frame.empty:
        return None
    out = score_labeled(frame, schema)
    out["labeled_fraction"] = round(labeled / log.count(model_version), 6)
    delay = (frame["received_at"] - frame["created_at"]).to_numpy(dtype=float)
    out["label_delay_seconds_median"] = round(float(np.median(delay)), 3)
    out["label_delay_seconds_p90"] = round(float(np.quantile(delay, 0.9)), 3)
    if reference_labels is not None and len(reference_labels):
        from monitoring.detect import chisquare_pvalue

        p_value = chisquare_pvalue(
            reference_labels.map(_label).astype(object), frame["label"].map(_label).astype(object)
        )
        out["label_drift"] = {
            "method": "chisquare",
            "score_kind": "p_value",
            "score": p_value,
            "threshold": alpha,
            "drifted": bool(p_value < alpha),
        }
    return out


def score_labeled(frame: pd.DataFrame, schema: FeatureSchema) -> dict:
    classes = [_label(c) for c in schema.classes]
    truth = frame["label"].map(_label)
    known = truth.isin(classes).to_numpy()
    # A label outside the model's classes (a client's mistake) cannot be scored.
    truth = truth[known].to_numpy()
    predicted = frame["prediction"].map(_label)[known].to_numpy()
    proba = np.array(
        [[float(p.get(c, 0.0)) for c in classes] for p in frame["probabilities"][known]]
    ).reshape(-1, len(classes))
    out: dict[str, Any] = {"labeled_rows": int(len(frame))}
    if int((~known).sum()):
        out["unknown_labels"] = int((~known).sum())
    if not len(truth):
        return {**{m: None for m in QUALITY_METRICS}, **out}
    return {**classification_metrics(truth, predicted, proba, classes), **out}
