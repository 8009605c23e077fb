"""The monitor's verdict on a candidate (a shadow or a canary) against production, on the rows
both models predicted (``vigil.log.shadow``).

- On every such row: agreement (the task's: share of equal labels, or mean absolute
  difference) and the candidate's prediction drift against production's predictions of the
  same rows.
- On the labeled ones: each model's live quality, and the task's paired test of the
  difference (``Task.paired_test``: McNemar mid-p, or Wilcoxon signed-rank of absolute errors).
  ``better`` is true or false when that test rejects at ``VIGIL_CANDIDATE_ALPHA`` with at least
  ``VIGIL_CANDIDATE_MIN_LABELED_ROWS`` labeled rows, else null (undecided).

Each verdict is stored in the registry (``Candidates.record_verdict``), where
``training.promote TAG --if-better`` reads the latest.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from monitoring.detect import pvalue_by_method
from vigil.log.shadow import ShadowLog
from vigil.registry.candidates import Candidates, Verdict
from vigil.registry.store import Registry
from vigil.tasks import Task

log = logging.getLogger(__name__)


def judge(
    pairs: pd.DataFrame,
    task: Task,
    classes: Sequence[Any],
    *,
    alpha: float,
    min_labeled_rows: int,
) -> dict[str, Any]:
    """The verdict's figures from paired rows (``ShadowLog.pairs``' columns)."""
    rows = len(pairs)
    out: dict[str, Any] = {
        "rows": rows,
        "agreement": None,
        "agreement_kind": task.agreement_kind,
        "prediction_drift": None,
        "labeled_rows": 0,
        "quality": {"production": None, "candidate": None},
        "test": None,
        "better": None,
    }
    if rows == 0:
        return out
    out["agreement"] = _finite(task.agreement(pairs["production"], pairs["candidate"]))
    p = pvalue_by_method(
        task.prediction_drift_method,
        task.prediction_values(pairs["production"]),
        task.prediction_values(pairs["candidate"]),
    )
    out["prediction_drift"] = {
        "method": task.prediction_drift_method,
        "score_kind": "p_value",
        "score": p,
        "drifted": p < alpha,
    }
    labeled = pairs[pairs["label"].notna()]
    out["labeled_rows"] = n = len(labeled)
    if n == 0:
        return out
    for who in ("production", "candidate"):
        frame = pd.DataFrame(
            {
                "label": labeled["label"].to_numpy(),
                "prediction": labeled[who].to_numpy(),
                "probabilities": labeled[f"{who}_probabilities"].to_numpy(),
            }
        )
        quality = task.score_logged(frame, classes)
        out["quality"][who] = {k: _finite(v) for k, v in quality.items()}
    method, p_value, direction = task.paired_test(
        labeled["label"].tolist(), labeled["production"].tolist(), labeled["candidate"].tolist()
    )
    decided = n >= min_labeled_rows and p_value < alpha and direction != 0
    out["test"] = {"method": method, "p_value": p_value, "alpha": alpha,
                   "min_labeled_rows": min_labeled_rows}  # fmt: skip
    out["better"] = (direction > 0) if decided else None
    return out


def check_candidate(settings, log_store, bundle, fence=None) -> dict[str, Any] | None:
    """The ``candidate`` part of a check of production model ``bundle``: None when no
    candidate runs. The verdict is recorded in the registry, if ``fence`` (when given) still
    says so just before: a monitor that lost leadership records nothing."""
    candidates = Candidates(Registry(settings))
    running = candidates.current()
    if not running.active or running.tag == bundle.tag:
        return None
    pairs = ShadowLog(log_store).pairs(bundle.tag, running.tag, settings.candidate_window_rows)
    figures = judge(
        pairs,
        bundle.task,
        bundle.schema.classes,
        alpha=settings.candidate_alpha,
        min_labeled_rows=settings.candidate_min_labeled_rows,
    )
    payload = {"model_version": running.tag, "mode": running.mode, **figures}
    if running.mode == "canary":
        payload["percent"] = running.percent
    if fence is not None and not fence():
        log.info("not leading: the verdict on %s is not stored", running.tag)
        return payload
    try:
        candidates.record_verdict(
            Verdict(
                running.tag,
                bundle.tag,
                running.mode,
                time.time(),
                figures["labeled_rows"],
                figures["better"],
                payload,
            )
        )
    except Exception as exc:  # the check's JSON still says it; promotion will wait
        log.warning("candidate verdict not stored: %s", exc)
    return payload


def _finite(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value
