"""The inference log: every answered instance, and the ground-truth labels joined to it.

One code path for SQLite (WAL, the default) and PostgreSQL (several replicas): SQLAlchemy Core
with the inputs stored as JSON text, so any model's schema fits without a migration.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydantic_core
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

# SQLite only autoincrements a plain INTEGER primary key.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_FETCH_CHUNK = 5_000
# One encoder for every row: json.dumps(..., allow_nan=False) builds a new one per call.
_STRICT_JSON = json.JSONEncoder(allow_nan=False)


class InferenceLogError(RuntimeError):
    """The store could not be reached or could not write."""


@dataclass(frozen=True)
class LogRow:
    prediction_id: str
    request_id: str
    model_version: str
    created_at: float  # Unix seconds
    inputs: dict[str, Any]
    prediction: Any
    probabilities: dict[str, float]


@dataclass(frozen=True)
class Window:
    """The newest rows of one model version; ``sampled`` when only some of them were read."""

    frame: pd.DataFrame
    total_rows: int
    sampled: bool


def _sqlite_pragmas(timeout: float):
    def on_connect(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed batch survives power loss, not only a process crash.
        cur.execute("PRAGMA synchronous=FULL")
        # How long a write waits for a lock before the request gets a 503.
        cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cur.close()

    return on_connect


def _normalise_url(url: str) -> str:
    # Plain postgresql:// would pick psycopg2, which we do not ship.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class InferenceLog:
    def __init__(self, url: str, table_prefix: str = "vigil_", *, timeout: float = 5.0):
        url = _normalise_url(url)
        self.url = url
        self.table_prefix = table_prefix
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(
                url, connect_args={"timeout": timeout, "check_same_thread": False}
            )
            sa.event.listen(self.engine, "connect", _sqlite_pragmas(timeout))
        else:
            self.engine = sa.create_engine(
                url,
                pool_pre_ping=True,
                pool_size=4,
                connect_args={
                    "connect_timeout": int(max(1, timeout)),
                    # A write blocked by a lock fails (503) instead of hanging the request.
                    "options": f"-c lock_timeout={int(timeout * 1000)}",
                },
            )
        md = sa.MetaData()
        self.predictions = sa.Table(
            f"{table_prefix}predictions",
            md,
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("prediction_id", sa.String(64), nullable=False, unique=True),
            sa.Column("request_id", sa.String(64), nullable=False),
            sa.Column("model_version", sa.String(200), nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("inputs", sa.Text, nullable=False),
            sa.Column("prediction", sa.Text, nullable=False),
            sa.Column("probabilities", sa.Text, nullable=False),
            sa.Index(f"{table_prefix}predictions_version_id", "model_version", "id"),
            sa.Index(f"{table_prefix}predictions_created", "created_at"),
        )
        self.feedback = sa.Table(
            f"{table_prefix}feedback",
            md,
            sa.Column("prediction_id", sa.String(64), primary_key=True),
            sa.Column("label", sa.Text, nullable=False),
            sa.Column("received_at", sa.Float, nullable=False),
        )
        self.metadata = md

    @classmethod
    def from_settings(cls, settings) -> InferenceLog:
        return cls(
            settings.resolved_database_url,
            settings.table_prefix,
            timeout=settings.log_timeout_seconds,
        )

    def create_schema(self) -> None:
        # Processes starting together (the service's workers, the monitor) race to create the
        # tables; the loser gets "already exists", and on a second look the tables are there.
        for attempt in range(3):
            try:
                self.metadata.create_all(self.engine)
                return
            except SQLAlchemyError as exc:
                error = exc
                time.sleep(0.1 * (attempt + 1))
        raise InferenceLogError(
            f"cannot create the inference log schema: {_one_line(error)}"
        ) from error

    def drop_schema(self) -> None:
        self.metadata.drop_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- writing -------------------------------------------------------------------------

    def write(self, rows: Sequence[LogRow]) -> None:
        """Store ``rows`` in one transaction; on return they are durable."""
        if not rows:
            return
        params = [
            {
                "prediction_id": r.prediction_id,
                "request_id": r.request_id,
                "model_version": r.model_version,
                "created_at": r.created_at,
                "inputs": _json(r.inputs),
                "prediction": _json(r.prediction),
                "probabilities": _json(r.probabilities),
            }
            for r in rows
        ]
        try:
            with self.engine.begin() as conn:
                conn.execute(self.predictions.insert(), params)
        except SQLAlchemyError as exc:
            raise InferenceLogError(f"inference log write failed: {_one_line(exc)}") from exc

    def add_feedback(self, labels: Iterable[tuple[str, Any]]) -> tuple[int, list[str]]:
        """Join labels to logged predictions; a repeated id replaces the earlier label.

        Returns the number accepted and the ids that match no logged prediction.
        """
        latest: dict[str, Any] = {}
        for prediction_id, label in labels:
            latest[prediction_id] = label  # the last of duplicates within one call wins
        if not latest:
            return 0, []
        now = time.time()
        try:
            with self.engine.begin() as conn:
                known = set()
                ids = list(latest)
                for start in range(0, len(ids), 1000):
                    chunk = ids[start : start + 1000]
                    known.update(
                        conn.scalars(
                            sa.select(self.predictions.c.prediction_id).where(
                                self.predictions.c.prediction_id.in_(chunk)
                            )
                        )
                    )
                rows = [
                    {"prediction_id": i, "label": json.dumps(latest[i]), "received_at": now}
                    for i in ids
                    if i in known
                ]
                if rows:
                    conn.execute(self._upsert_feedback(), rows)
        except SQLAlchemyError as exc:
            raise InferenceLogError(f"feedback write failed: {_one_line(exc)}") from exc
        unknown = [i for i in ids if i not in known]
        return len(rows), unknown

    def _upsert_feedback(self):
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(self.feedback)
        return stmt.on_conflict_do_update(
            index_elements=["prediction_id"],
            set_={"label": stmt.excluded.label, "received_at": stmt.excluded.received_at},
        )

    def prune(self, older_than: float) -> int:
        """Delete predictions (and their labels) logged before ``older_than`` (Unix seconds)."""
        p, f = self.predictions, self.feedback
        try:
            with self.engine.begin() as conn:
                old = sa.select(p.c.prediction_id).where(p.c.created_at < older_than)
                conn.execute(f.delete().where(f.c.prediction_id.in_(old)))
                return conn.execute(p.delete().where(p.c.created_at < older_than)).rowcount
        except SQLAlchemyError as exc:
            raise InferenceLogError(f"inference log prune failed: {_one_line(exc)}") from exc

    # -- reading -------------------------------------------------------------------------

    def count(self, model_version: str | None = None) -> int:
        stmt = sa.select(sa.func.count()).select_from(self.predictions)
        if model_version is not None:
            stmt = stmt.where(self.predictions.c.model_version == model_version)
        with self._reading() as conn:
            return int(conn.scalar(stmt))

    def labeled_count(self, model_version: str) -> int:
        """How many predictions of ``model_version`` have a ground-truth label."""
        p, f = self.predictions, self.feedback
        # Driven from the labels (EXISTS): a join lets SQLite walk every prediction instead.
        stmt = (
            sa.select(sa.func.count())
            .where(
                sa.exists().where(
                    p.c.prediction_id == f.c.prediction_id, p.c.model_version == model_version
                )
            )
            .select_from(f)
        )
        with self._reading() as conn:
            return int(conn.scalar(stmt))

    def prediction_ids(self) -> set[str]:
        with self._reading() as conn:
            return set(conn.scalars(sa.select(self.predictions.c.prediction_id)))

    def latest(
        self,
        model_version: str,
        n: int,
        *,
        since: float | None = None,
        max_rows: int | None = None,
        seed: int = 0,
    ) -> Window:
        """The newest ``n`` rows of ``model_version`` (optionally newer than ``since``), oldest
        first, as a frame of the logged inputs plus ``prediction_id``, ``created_at`` and
        ``prediction``. Memory stays bounded: a window larger than ``max_rows`` is read as a
        uniform sample of ``max_rows`` of its rows, and ``sampled`` says so."""
        p = self.predictions
        cond = p.c.model_version == model_version
        if since is not None:
            cond = sa.and_(cond, p.c.created_at >= since)
        with self._reading() as conn:
            ids = np.fromiter(
                conn.scalars(sa.select(p.c.id).where(cond).order_by(p.c.id.desc()).limit(n)),
                dtype=np.int64,
            )
            total = len(ids)
            sampled = max_rows is not None and total > max_rows
            if sampled:
                ids = np.random.default_rng(seed).choice(ids, size=max_rows, replace=False)
            ids = np.sort(ids)
            pieces = []
            cols = [p.c.id, p.c.prediction_id, p.c.created_at, p.c.inputs, p.c.prediction]
            for start in range(0, len(ids), _FETCH_CHUNK):
                chunk = ids[start : start + _FETCH_CHUNK].tolist()
                # A range scan on the primary key, then a filter: cheaper than a huge IN list.
                stmt = (
                    sa.select(*cols)
                    .where(p.c.id.between(chunk[0], chunk[-1]))
                    .where(cond)
                    .order_by(p.c.id)
                )
                wanted = set(chunk) if sampled else None
                rows = [r for r in conn.execute(stmt) if wanted is None or r.id in wanted]
                # Parsed chunk by chunk: the whole window's JSON text and dicts (several times
                # the frame's size) never live at once.
                pieces.append(_to_frame(rows))
        if len(pieces) > 1:
            frame = pd.concat(pieces, ignore_index=True, sort=False)
        else:
            frame = pieces[0] if pieces else pd.DataFrame()
        return Window(frame=frame, total_rows=total, sampled=sampled)

    def labeled(self, model_version: str | None, n: int) -> pd.DataFrame:
        """The newest ``n`` labeled predictions of ``model_version`` (of every version when
        None), oldest first: inputs, ``prediction``, ``probabilities`` (dict), ``label``,
        ``model_version``, ``created_at``, ``received_at``."""
        p, f = self.predictions, self.feedback
        stmt = (
            sa.select(
                p.c.id,
                p.c.prediction_id,
                p.c.created_at,
                p.c.inputs,
                p.c.prediction,
                p.c.probabilities,
                p.c.model_version,
                f.c.label,
                f.c.received_at,
            )
            .join(f, f.c.prediction_id == p.c.prediction_id)
            .order_by(p.c.id.desc())
            .limit(n)
        )
        if model_version is not None:
            stmt = stmt.where(p.c.model_version == model_version)
        with self._reading() as conn:
            records = list(conn.execute(stmt))[::-1]
        frame = _to_frame(records)
        if records:
            frame["probabilities"] = [json.loads(r.probabilities) for r in records]
            frame["label"] = [json.loads(r.label) for r in records]
            frame["model_version"] = [r.model_version for r in records]
            frame["received_at"] = [r.received_at for r in records]
        return frame

    def _reading(self):
        return _Reading(self.engine)


class _Reading:
    """A connection whose errors surface as ``InferenceLogError``."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def __enter__(self):
        try:
            self.conn = self.engine.connect()
        except SQLAlchemyError as exc:
            raise InferenceLogError(f"inference log unreachable: {_one_line(exc)}") from exc
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        self.conn.close()
        if isinstance(exc, SQLAlchemyError):
            raise InferenceLogError(f"inference log read failed: {_one_line(exc)}") from exc
        return False


def _to_frame(records: list) -> pd.DataFrame:
    if not records:
        return pd.DataFrame()
    # pydantic_core's parser gives the same values as json.loads, about 3x faster: parsing
    # is most of the cost of reading a drift window.
    inputs = pd.DataFrame.from_records([pydantic_core.from_json(r.inputs) for r in records])
    inputs["prediction_id"] = [r.prediction_id for r in records]
    inputs["created_at"] = [r.created_at for r in records]
    inputs["prediction"] = [pydantic_core.from_json(r.prediction) for r in records]
    return inputs


def _json(value: Any) -> str:
    """JSON text as ``json.dumps(value, allow_nan=False)`` would write it (NaN and infinities
    raise ValueError), but through pydantic_core's encoder: about four times faster for a row
    of floats, and the service writes three of these per answered instance."""
    try:
        out = pydantic_core.to_json(value)
    except (pydantic_core.PydanticSerializationError, ValueError):
        return _STRICT_JSON.encode(value)
    if b"NaN" in out or b"Infinity" in out:  # a non-finite number, or just such a string
        return _STRICT_JSON.encode(value)
    return out.decode()


def _one_line(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
