"""The other model's predictions of answered requests, and reading them back paired with the
answers.

While a candidate runs, each answered request is also scored by the model that did not answer
it (a shadow: the candidate; a canary: production scores the canary's requests, the candidate
the others). Those predictions go to ``shadow_predictions`` (``vigil.store.tables``),
one row per request and model version, written in one statement: a row is whole or absent. The
answer itself stays in the inference log; a prediction id names both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from vigil.log.format import dumps, loads, row
from vigil.log.inference_log import InferenceLog, InferenceLogError
from vigil.log.prediction_ids import prediction_id
from vigil.store.tables import candidate_tables
from vigil.text import one_line

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ShadowRecord:
    request_id: str
    model_version: str  # the model that made these predictions (not the one that answered)
    created_at: float
    predictions: Sequence[Any]
    probabilities: Mapping[str, Sequence[float]]


class ShadowLog:
    """Shadow predictions in the inference log's database (same engine, same prefix)."""

    def __init__(self, log: InferenceLog):
        self.log = log
        self.table = candidate_tables(log.table_prefix).shadow

    def write(self, records: Sequence[ShadowRecord]) -> None:
        """One transaction; ``InferenceLogError`` when it fails (nothing of it is kept)."""
        params = [
            {
                "request_id": r.request_id,
                "model_version": r.model_version,
                "created_at": r.created_at,
                "row_count": len(r.predictions),
                "predictions": dumps(list(r.predictions)),
                "probabilities": dumps({k: list(v) for k, v in r.probabilities.items()}),
            }
            for r in records
        ]
        if not params:
            return
        try:
            with self.log.engine.begin() as conn:
                conn.execute(self.table.insert(), params)
        except SQLAlchemyError as exc:
            raise InferenceLogError(f"shadow log write failed: {one_line(exc)}") from exc

    def prune(self, older_than: float) -> int:
        """Delete shadow predictions made before ``older_than`` (Unix seconds) in short
        batches, as retention deletes requests; returns the rows (instances) deleted."""
        return self.log.prune_in_batches(
            partial(self._prune_batch, older_than=older_than), "shadow log"
        )

    def _prune_batch(self, conn, limit: int, *, older_than: float) -> tuple[int, int]:
        """Delete the oldest ``limit`` shadow predictions made before ``older_than``; returns
        (records, instances) deleted."""
        t = self.table
        old = t.c.created_at < older_than
        ids = list(
            conn.scalars(sa.select(t.c.request_id).where(old).order_by(t.c.created_at).limit(limit))
        )
        if not ids:
            return 0, 0
        # By request id (the key's first column, so indexed): every aged version of each.
        these = sa.and_(t.c.request_id.in_(ids), old)
        rows = conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(t.c.row_count), 0)).where(these))
        conn.execute(t.delete().where(these))
        return len(ids), int(rows)

    def count(self, model_version: str | None = None) -> int:
        """Shadow predictions (instances) logged."""
        t = self.table
        stmt = sa.select(sa.func.coalesce(sa.func.sum(t.c.row_count), 0))
        if model_version is not None:
            stmt = stmt.where(t.c.model_version == model_version)
        with self.log._reading() as conn:
            return int(conn.scalar(stmt))

    def pairs(self, production: str, candidate: str, n: int) -> pd.DataFrame:
        """The newest ``n`` (about: whole requests) rows both models predicted, oldest first:
        ``prediction_id``, ``answered_by``, ``production`` and ``candidate`` (predictions),
        ``production_probabilities`` and ``candidate_probabilities`` (dicts, empty for a
        regressor) and ``label`` (None when no label came)."""
        import pandas as pd

        t, r, f = self.table, self.log.requests, self.log.feedback
        versions = {production: candidate, candidate: production}
        stmt = (
            sa.select(
                t.c.request_id, t.c.model_version, t.c.row_count, t.c.predictions, t.c.probabilities
            )  # fmt: skip
            .where(t.c.model_version.in_(list(versions)))
            .order_by(t.c.created_at.desc())
        )
        shadows, rows = [], 0
        with self.log._reading() as conn:
            for found in conn.execute(stmt.execution_options(yield_per=1000)):
                shadows.append(found)
                rows += found.row_count
                if rows >= n:
                    break
            shadows.reverse()
            ids = [s.request_id for s in shadows]
            cols = [r.c.request_id, r.c.model_version, r.c.row_count, r.c.predictions,
                    r.c.probabilities]  # fmt: skip
            answers = self.log._find_requests(conn, cols, ids)
            labels: dict[str, Any] = {}
            for start in range(0, len(ids), 1000):
                chunk = ids[start : start + 1000]
                for label in conn.execute(
                    sa.select(f.c.prediction_id, f.c.label).where(f.c.request_id.in_(chunk))
                ):
                    labels[label.prediction_id] = json.loads(label.label)
        out: dict[str, list] = {key: [] for key in _COLUMNS}
        for shadow in shadows:
            answer = answers.get(shadow.request_id)
            # The answer's model must be the other one (else production moved meanwhile).
            if answer is None or versions.get(answer.model_version) != shadow.model_version:
                continue
            if answer.row_count != shadow.row_count:
                continue
            by_version = {
                answer.model_version: (loads(answer.predictions), loads(answer.probabilities)),
                shadow.model_version: (loads(shadow.predictions), loads(shadow.probabilities)),
            }
            (p_pred, p_prob), (c_pred, c_prob) = by_version[production], by_version[candidate]
            for i in range(shadow.row_count):
                pid = prediction_id(shadow.request_id, i)
                out["prediction_id"].append(pid)
                out["answered_by"].append(answer.model_version)
                out["production"].append(p_pred[i])
                out["candidate"].append(c_pred[i])
                out["production_probabilities"].append(row(p_prob, i))
                out["candidate_probabilities"].append(row(c_prob, i))
                out["label"].append(labels.get(pid))
        return pd.DataFrame(out)


_COLUMNS = (
    "prediction_id",
    "answered_by",
    "production",
    "candidate",
    "production_probabilities",
    "candidate_probabilities",
    "label",
)


__all__ = ["InferenceLogError", "ShadowLog", "ShadowRecord"]
