"""The inference log: every answered request, and the ground-truth labels joined to it.

One record per request, not per instance: the request's id, model version, time, row count,
and its instances, predictions and probabilities as JSON (``vigil.log.format``: position ``i``
of every array is the request's ``i``-th instance). A write costs one JSON encoding per column
and one entry per index per request: a table row (and index entries) per instance cost about
as much CPU per instance as the rest of the service. Prediction ids are the request id plus the
instance's position (``vigil.log.prediction_ids``), so they need no index of their own.

One code path for SQLite (WAL, the default) and PostgreSQL (several replicas): SQLAlchemy Core
with the JSON stored as text, so any model's schema fits without a migration. The tables are
made and versioned by Alembic (``vigil.store.migrations``, ``python -m vigil.db``). On PostgreSQL
the requests table is partitioned by day (``vigil.log.partitions``): retention drops partitions,
and reads bound ``created_at`` so that only the partitions that can hold their rows are read.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from vigil.log import partitions as log_partitions
from vigil.log.format import ColumnsBuilder, dumps, instance_columns, loads, row
from vigil.log.prediction_ids import (
    MAX_REQUEST_ROWS,
    is_request_id,
    prediction_id,
    prediction_ids,
    split_prediction_id,
)
from vigil.log.window import newest_records_needed, plan_window
from vigil.store import migrations
from vigil.store.engine import engine_for, normalise_url
from vigil.store.errors import InferenceLogError, LogSchemaError
from vigil.store.tables import log_tables
from vigil.text import one_line

if TYPE_CHECKING:
    import pandas as pd

# Rows parsed from JSON at a time when reading: bounds memory, not the window's size.
_FETCH_ROWS = 5_000
# Rows encoded and sent at a time by one write (still one transaction).
_WRITE_ROWS = 50_000
_IN_CHUNK = 1_000  # values in one SQL IN (...) list
# Requests deleted per transaction by retention: each transaction holds SQLite's write lock for
# milliseconds, far below the busy timeout that writers wait for.
_PRUNE_BATCH = 500
# A request's created_at is when its batch ran, a little after its id's timestamp (receipt):
# lookups by id read the partitions within this much of the id's time (then all, for misses).
_ID_TIME_MARGIN = 3_600.0
# How far back a window looks first, then next, before reading every partition.
_WINDOW_TIERS = (log_partitions.DAY, 7 * log_partitions.DAY)
# How often a writer checks that today's and the next days' partitions exist.
_PARTITIONS_EVERY = 600.0
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogRecord:
    """One answered request: its instances (as received, ``None`` for missing values), the
    predicted class of each, and each class's probability for each.

    ``instances`` are records (dicts), or the same already by feature (``{"age": [value of
    instance 0, value of instance 1, ...], ...}``, as ``vigil.schema.record_columns`` makes
    them); ``probabilities`` are by class the same way (the model's output columns).
    """

    request_id: str  # a UUIDv7 in hex (vigil.log.prediction_ids.new_request_id)
    model_version: str
    created_at: float  # Unix seconds
    instances: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]
    predictions: Sequence[Any]
    probabilities: Mapping[str, Sequence[float]]

    @property
    def prediction_ids(self) -> list[str]:
        return prediction_ids(self.request_id, len(self.predictions))


@dataclass(frozen=True)
class Window:
    """The newest rows of one model version; ``sampled`` when only some of them were read."""

    frame: pd.DataFrame
    total_rows: int
    sampled: bool


def _id_time(request_id: str) -> float:
    """The Unix time in a request id (a UUIDv7's first 48 bits are milliseconds)."""
    return int(request_id[:12], 16) / 1000


class InferenceLog:
    def __init__(
        self,
        url: str,
        table_prefix: str = "vigil_",
        *,
        timeout: float = 5.0,
        manage_schema: bool = True,
    ):
        self.url = url = normalise_url(url)
        self.table_prefix = table_prefix
        # False: no DDL from this process (a role without it); the schema and the day
        # partitions are someone else's (the monitor, `python -m vigil.db upgrade`).
        self.manage_schema = manage_schema
        self.engine: Engine = engine_for(url, timeout)
        self.partitioned = self.engine.dialect.name == "postgresql"
        self._partitions_checked = -math.inf
        # The tables as queried; their DDL (keys, partitions) is in the migrations.
        tables = log_tables(table_prefix)
        self.requests, self.feedback = tables.requests, tables.feedback
        self.metadata = tables.metadata

    @classmethod
    def from_settings(cls, settings) -> InferenceLog:
        return cls(
            settings.resolved_database_url,
            settings.table_prefix,
            timeout=settings.log_timeout_seconds,
            manage_schema=settings.manage_schema,
        )

    def create_schema(self) -> None:
        """Create the schema on an empty database (at this build's version), then check it:
        ``LogSchemaError`` for an older or newer one, which only ``python -m vigil.db upgrade``
        changes. Processes starting together create it once (``vigil.store.migrations.upgrade``).
        Without ``manage_schema`` it is only checked."""
        if not self.manage_schema:
            return self.check_schema()
        try:
            migrations.upgrade(self.engine, self.table_prefix, only_if_empty=True)
        except migrations.SchemaError as exc:
            raise LogSchemaError(str(exc)) from None
        except SQLAlchemyError as exc:
            raise InferenceLogError(
                f"cannot create the inference log schema: {one_line(exc)}"
            ) from exc
        self.check_schema()

    def schema_state(self) -> migrations.SchemaState:
        return migrations.database_state(self.engine, self.table_prefix)

    def check_schema(self) -> None:
        """``LogSchemaError`` unless the schema is at this build's version; on PostgreSQL,
        also makes sure today's partitions exist."""
        problem = self.schema_state().problem
        if problem is not None:
            raise LogSchemaError(problem)
        self._ensure_partitions(time.time(), strict=True)

    def drop_schema(self) -> None:
        """Drop every table of this prefix (tests): the log's, its partitions, the version."""
        with self.engine.begin() as conn:
            names = [
                name
                for name in sa.inspect(conn).get_table_names()
                if name.startswith(self.table_prefix)
            ]
            cascade = " CASCADE" if self.partitioned else ""
            for name in names:
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"{cascade}')

    def ensure_partitions(self, now: float | None = None) -> None:
        """Today's and the next days' partitions (the monitor calls this every tick, so that
        writers without DDL rights find them); at most every few minutes."""
        self._ensure_partitions(time.time() if now is None else now)

    def _ensure_partitions(self, now: float, *, strict: bool = False) -> None:
        """Today's and the next days' partitions, checked at most every few minutes. A failure
        never fails a write (rows without a partition go to the default one): logged."""
        if not self.partitioned or not self.manage_schema:
            return
        if now - self._partitions_checked < _PARTITIONS_EVERY:
            return
        self._partitions_checked = now
        try:
            with self.engine.begin() as conn:
                made = log_partitions.ensure(conn, self.table_prefix, now)
        except SQLAlchemyError as exc:
            if strict:
                raise InferenceLogError(
                    f"cannot create the log's partitions: {one_line(exc)}"
                ) from exc
            logger.warning("inference log partitions not created: %s", one_line(exc))
            return
        if made:
            logger.info("inference log partitions created: %s", ", ".join(made))

    def close(self) -> None:
        self.engine.dispose()

    # -- writing -------------------------------------------------------------------------

    def write(self, records: Iterable[LogRecord]) -> None:
        """Store ``records`` in one transaction; on return they are durable.

        Any number of records: they are encoded and sent a slice at a time, so bulk loads
        (tests, benchmarks) stay bounded in memory.
        """
        self._ensure_partitions(time.time())
        try:
            with self.engine.begin() as conn:
                params: list[dict[str, Any]] = []
                rows = 0
                for record in records:
                    params.append(_params(record))
                    rows += params[-1]["row_count"]
                    if rows >= _WRITE_ROWS:
                        conn.execute(self.requests.insert(), params)
                        params, rows = [], 0
                if params:
                    conn.execute(self.requests.insert(), params)
        except SQLAlchemyError as exc:
            raise InferenceLogError(f"inference log write failed: {one_line(exc)}") from exc

    def add_feedback(self, labels: Iterable[tuple[str, Any]]) -> tuple[int, list[str]]:
        """Join labels to logged predictions; a repeated id replaces the earlier label.

        Returns the number accepted and the ids that match no logged prediction (malformed
        ones, those of no logged request, and positions past the end of their request).
        """
        latest: dict[str, Any] = {}
        for pid, label in labels:
            latest[pid] = label  # the last of duplicates within one call wins
        if not latest:
            return 0, []
        wanted = {pid: split_prediction_id(pid) for pid in latest}
        request_ids = sorted({split[0] for split in wanted.values() if split is not None})
        r = self.requests
        now = time.time()
        try:
            with self.engine.begin() as conn:
                found = self._find_requests(conn, [r.c.request_id, r.c.row_count], request_ids)
                sizes = {key: row.row_count for key, row in found.items()}
                rows = [
                    {
                        "prediction_id": pid,
                        "request_id": split[0],
                        "row_offset": split[1],
                        "label": json.dumps(latest[pid]),
                        "received_at": now,
                    }
                    for pid, split in wanted.items()
                    if split is not None and split[1] < sizes.get(split[0], 0)
                ]
                if rows:
                    conn.execute(self._upsert_feedback(), rows)
        except SQLAlchemyError as exc:
            raise InferenceLogError(f"feedback write failed: {one_line(exc)}") from exc
        accepted = {row["prediction_id"] for row in rows}
        return len(rows), [pid for pid in latest if pid not in accepted]

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

    def _find_requests(self, conn: Connection, cols, request_ids: Sequence[str]) -> dict:
        """Rows (``cols``, the first being ``request_id``) of the requests with these ids, by
        id. Partitioned, each lookup reads only the partitions near its ids' timestamps; the
        ids it did not find there (a request logged long after it came, or none) are looked
        up in every partition."""
        r = self.requests
        found: dict[str, Any] = {}
        for chunk in _chunks(sorted(request_ids), _IN_CHUNK):
            stmt = sa.select(*cols).where(r.c.request_id.in_(chunk))
            if self.partitioned:
                lo, hi = _id_time(chunk[0]), _id_time(chunk[-1])
                near = r.c.created_at.between(lo - _ID_TIME_MARGIN, hi + _ID_TIME_MARGIN)
                found.update((row[0], row) for row in conn.execute(stmt.where(near)))
                missing = [key for key in chunk if key not in found]
                if not missing:
                    continue
                stmt = sa.select(*cols).where(r.c.request_id.in_(missing))
            found.update((row[0], row) for row in conn.execute(stmt))
        return found

    def prune(self, older_than: float) -> int:
        """Delete requests (and their labels) logged before ``older_than`` (Unix seconds);
        returns the number of predictions deleted.

        On PostgreSQL the day partitions wholly older are dropped; what is left (rows of the
        day ``older_than`` falls in, and of the default partition) is deleted like on SQLite:
        ``_PRUNE_BATCH`` requests per short transaction, oldest first, so no transaction holds
        the write lock long enough to time a writer out."""
        removed = 0
        try:
            if self.partitioned:
                removed += self._drop_partitions(older_than)
        except SQLAlchemyError as exc:
            raise InferenceLogError(f"inference log prune failed: {one_line(exc)}") from exc
        return removed + self.prune_in_batches(
            partial(self._prune_batch, older_than=older_than), "inference log"
        )

    def prune_in_batches(self, delete_batch: Callable[..., tuple[int, int]], what: str) -> int:
        """Run ``delete_batch(conn, limit)`` (deletes at most ``limit`` rows, oldest first,
        returns (rows deleted, predictions in them)) in one short transaction each until it
        deletes fewer than ``limit``: no transaction holds SQLite's write lock long enough to
        time a writer out. Returns the predictions deleted; ``InferenceLogError`` naming
        ``what`` when a batch fails (the batches before it stay deleted)."""
        removed = 0
        try:
            while True:
                with self.engine.begin() as conn:
                    deleted, rows = delete_batch(conn, _PRUNE_BATCH)
                removed += rows
                if deleted < _PRUNE_BATCH:
                    return removed
        except SQLAlchemyError as exc:
            raise InferenceLogError(f"{what} prune failed: {one_line(exc)}") from exc

    def _drop_partitions(self, older_than: float) -> int:
        """Drop the day partitions wholly older than ``older_than``, one per short transaction
        (each holds a lock that blocks writes until it commits). A partition whose lock stays
        busy is tried again a few times, then left to the row deletes that follow."""
        with self.engine.connect() as conn:
            due = log_partitions.due(conn, self.table_prefix, older_than)
        removed = 0
        for part in due:
            for _ in range(log_partitions.DROP_ATTEMPTS):
                try:
                    with self.engine.begin() as conn:
                        removed += log_partitions.drop_one(
                            conn, self.table_prefix, part, self.feedback.name
                        )
                    break
                except log_partitions.PartitionBusy:
                    time.sleep(log_partitions.DROP_PAUSE)
            else:
                logger.warning("%s: its lock stayed busy; its rows are deleted instead", part.name)
        return removed

    def _prune_batch(self, conn: Connection, limit: int, *, older_than: float) -> tuple[int, int]:
        """Delete the oldest ``limit`` requests logged before ``older_than`` and their
        labels; returns (requests, predictions) deleted."""
        r, f = self.requests, self.feedback
        batch = conn.execute(
            sa.select(r.c.id, r.c.request_id, r.c.row_count)
            .where(r.c.created_at < older_than)
            .order_by(r.c.created_at)
            .limit(limit)
        ).all()
        if not batch:
            return 0, 0
        ids = [row.id for row in batch]
        conn.execute(f.delete().where(f.c.request_id.in_([row.request_id for row in batch])))
        conn.execute(r.delete().where(r.c.id.in_(ids), r.c.created_at < older_than))
        return len(batch), sum(row.row_count for row in batch)

    # -- reading -------------------------------------------------------------------------

    def count(self, model_version: str | None = None) -> int:
        """Logged predictions (instances, not requests)."""
        r = self.requests
        stmt = sa.select(sa.func.coalesce(sa.func.sum(r.c.row_count), 0))
        if model_version is not None:
            stmt = stmt.where(r.c.model_version == model_version)
        with self._reading() as conn:
            return int(conn.scalar(stmt))

    def labeled_count(self, model_version: str) -> int:
        """How many predictions of ``model_version`` have a ground-truth label."""
        r, f = self.requests, self.feedback
        # Driven from the labels (EXISTS): there are far fewer of them than requests.
        stmt = (
            sa.select(sa.func.count())
            .where(
                sa.exists().where(
                    r.c.request_id == f.c.request_id, r.c.model_version == model_version
                )
            )
            .select_from(f)
        )
        with self._reading() as conn:
            return int(conn.scalar(stmt))

    def prediction_ids(self) -> set[str]:
        r = self.requests
        with self._reading() as conn:
            rows = conn.execute(sa.select(r.c.request_id, r.c.row_count)).tuples()
            return {pid for request_id, n in rows for pid in prediction_ids(request_id, n)}

    def latest(
        self,
        model_version: str,
        n: int,
        *,
        since: float | None = None,
        max_rows: int | None = None,
        seed: int = 0,
        probabilities: bool = False,
    ) -> Window:
        """The newest ``n`` rows of ``model_version`` (optionally newer than ``since``), oldest
        first, as a frame of the logged inputs plus ``prediction_id``, ``created_at`` and
        ``prediction`` (and ``probabilities``, a ``{class: p}`` per row, when asked for).
        Memory stays bounded: a window larger than ``max_rows`` is read as a uniform sample
        of ``max_rows`` of its rows, and ``sampled`` says so."""
        import pandas as pd

        r = self.requests
        with self._reading() as conn:
            # Partitioned, the newest day is read first, then the week, then everything: a
            # window that the recent rows fill reads only their partitions.
            for bound in self._window_bounds(since):
                cond = r.c.model_version == model_version
                if bound is not None:
                    cond = sa.and_(cond, r.c.created_at >= bound)
                ids, sizes = self._newest_records(conn, cond, n)
                if sizes.sum() >= n:
                    break
            plan = plan_window(sizes, n, max_rows, seed)
            if plan.total_rows == 0:
                return Window(frame=pd.DataFrame(), total_rows=0, sampled=False)
            # The records holding a row of the window, each with the positions wanted from it.
            first = np.flatnonzero(np.diff(plan.records, prepend=-1)).tolist()
            offsets = plan.offsets.tolist()
            records = plan.records[first]
            wanted = [
                (key, size, offsets[start:stop])
                for key, size, start, stop in zip(
                    ids[records].tolist(),
                    sizes[records].tolist(),
                    first,
                    [*first[1:], len(offsets)],
                    strict=True,
                )
            ]
            cols = [r.c.id, r.c.request_id, r.c.created_at, r.c.instances, r.c.predictions]
            if probabilities:
                cols.append(r.c.probabilities)
            # Parsed chunk by chunk: the whole window's JSON text and values (several times
            # the frame's size) never live at once.
            with _no_gc():
                pieces = [
                    _window_frame(chunk, found)
                    for chunk, found in self._records(
                        conn, r.c.id, wanted, cols, every=None if plan.sampled else cond, near=cond
                    )
                ]
        pieces = [piece for piece in pieces if len(piece)]
        if len(pieces) > 1:
            frame = pd.concat(pieces, ignore_index=True, sort=False)
        else:
            frame = pieces[0] if pieces else pd.DataFrame()
        return Window(frame=frame, total_rows=plan.total_rows, sampled=plan.sampled)

    def _window_bounds(self, since: float | None) -> list[float | None]:
        """The ``created_at`` lower bounds a window tries in turn, the last one ``since``."""
        if not self.partitioned:
            return [since]
        now = time.time()
        tiers = [now - age for age in _WINDOW_TIERS if since is None or now - age > since]
        return [*tiers, since]

    def _newest_records(self, conn: Connection, cond, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Ids and row counts, oldest first, of the fewest newest records matching ``cond``
        that hold ``n`` rows (all of them if fewer): read from the covering index, a page at
        a time, each page sized by the rows per record seen so far."""
        r = self.requests
        ids: list[int] = []
        sizes: list[int] = []
        limit = min(n, 1_000)
        while n > 0:
            stmt = sa.select(r.c.id, r.c.row_count).where(cond)
            if ids:
                stmt = stmt.where(r.c.id < ids[-1])
            page = conn.execute(stmt.order_by(r.c.id.desc()).limit(limit)).all()
            ids.extend(row[0] for row in page)
            sizes.extend(row[1] for row in page)
            held = sum(sizes)
            if len(page) < limit or held >= n:
                break
            # Each record holds at least one row: never more than n - held records to go.
            per_record = held / len(ids)
            limit = min(n - held, int((n - held) / per_record * 1.25) + 100)
        keep = newest_records_needed(np.asarray(sizes, dtype=np.int64), n) if sizes else 0
        return (
            np.asarray(ids[:keep], dtype=np.int64)[::-1],
            np.asarray(sizes[:keep], dtype=np.int64)[::-1],
        )

    def labeled(self, model_version: str | None, n: int) -> pd.DataFrame:
        """The newest ``n`` labeled predictions of ``model_version`` (of every version when
        None), oldest first: inputs, ``prediction_id``, ``prediction``, ``probabilities``
        (dict), ``label``, ``model_version``, ``created_at``, ``received_at``."""
        import pandas as pd

        r, f = self.requests, self.feedback
        # Driven from the labels, newest first (request ids are time-ordered), so that it stops
        # after n of them: a join filtered on the version lets SQLite walk every request of it.
        stmt = sa.select(
            f.c.prediction_id, f.c.request_id, f.c.row_offset, f.c.label, f.c.received_at
        )
        if model_version is not None:
            stmt = stmt.where(
                sa.exists().where(
                    r.c.request_id == f.c.request_id, r.c.model_version == model_version
                )
            )
        stmt = stmt.order_by(f.c.request_id.desc(), f.c.row_offset.desc()).limit(n)
        meta = [r.c.request_id, r.c.model_version, r.c.created_at, r.c.row_count]
        cols = [r.c.request_id, r.c.instances, r.c.predictions, r.c.probabilities]
        with self._reading() as conn:
            labels = conn.execute(stmt).all()[::-1]  # sorted by request, then position
            groups: dict[str, list] = {}
            for label in labels:
                groups.setdefault(label.request_id, []).append(label)
            requests = self._find_requests(conn, meta, list(groups))
            wanted = [
                (key, requests[key].row_count, [label.row_offset for label in group])
                for key, group in groups.items()
                if key in requests  # else pruned since the labels were read
            ]
            builder = ColumnsBuilder()
            kept, predictions, probabilities, versions, created = [], [], [], [], []
            with _no_gc():
                for chunk, found in self._records(
                    conn, r.c.request_id, wanted, cols, near=self._near(requests.values())
                ):
                    for key, size, offsets in chunk:
                        record = found.get(key)
                        if record is None:
                            continue  # pruned meanwhile
                        builder.add(loads(record.instances), offsets, size)
                        preds, probs = loads(record.predictions), loads(record.probabilities)
                        predictions.extend(preds[o] for o in offsets)
                        probabilities.extend(row(probs, o) for o in offsets)
                        kept.extend(groups[key])
                        versions.extend([requests[key].model_version] * len(offsets))
                        created.extend([requests[key].created_at] * len(offsets))
        if not kept:
            return pd.DataFrame()
        return builder.frame(
            [
                ("prediction_id", [label.prediction_id for label in kept]),
                ("created_at", created),
                ("prediction", predictions),
                ("probabilities", probabilities),
                ("label", [json.loads(label.label) for label in kept]),
                ("model_version", versions),
                ("received_at", [label.received_at for label in kept]),
            ]
        )

    def _records(
        self,
        conn: Connection,
        key,
        wanted: Sequence[tuple[Any, int, list[int]]],
        cols,
        every=None,
        near=None,
    ) -> Iterator[tuple[list, dict]]:
        """``(key, row_count, offsets)`` items in chunks of about ``_FETCH_ROWS`` rows, each
        with its records (``cols``, looked up by ``key``) by key. With ``every`` (a condition),
        the items are every record matching it in their key range: read by range scans, which
        cost less than long IN lists (a window of one-row requests has many records).
        ``near``, a condition every record meets, lets PostgreSQL skip other partitions."""
        start = 0
        while start < len(wanted):
            stop, rows = start, 0
            while stop < len(wanted) and (stop == start or rows < _FETCH_ROWS):
                rows += wanted[stop][1]
                stop += 1
            chunk = wanted[start:stop]
            found = {}
            if every is not None:
                stmt = sa.select(*cols).where(every, key.between(chunk[0][0], chunk[-1][0]))
                found.update((row[0], row) for row in conn.execute(stmt))
            else:
                for keys in _chunks([item[0] for item in chunk], _IN_CHUNK):
                    stmt = sa.select(*cols).where(key.in_(keys))
                    if near is not None:
                        stmt = stmt.where(near)
                    found.update((row[0], row) for row in conn.execute(stmt))
            yield chunk, found
            start = stop

    def _near(self, requests) -> Any:
        """A ``created_at`` range holding these request rows (None when not partitioned)."""
        times = [row.created_at for row in requests]
        if not self.partitioned or not times:
            return None
        return self.requests.c.created_at.between(min(times), max(times))

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
            raise InferenceLogError(f"inference log unreachable: {one_line(exc)}") from exc
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        self.conn.close()
        if isinstance(exc, SQLAlchemyError):
            raise InferenceLogError(f"inference log read failed: {one_line(exc)}") from exc
        return False


def _params(record: LogRecord) -> dict[str, Any]:
    n = len(record.predictions)
    if not is_request_id(record.request_id):
        raise ValueError(f"request id {record.request_id!r} is not 32 lowercase hex digits")
    if not 0 < n <= MAX_REQUEST_ROWS:
        raise ValueError(f"a logged request holds 1 to {MAX_REQUEST_ROWS} instances, not {n}")
    columns = instance_columns(record.instances)
    if set(map(len, chain(columns.values(), record.probabilities.values()))) - {n}:
        raise ValueError("instances, predictions and probabilities differ in length")
    return {
        "request_id": record.request_id,
        "model_version": record.model_version,
        "created_at": record.created_at,
        "row_count": n,
        "instances": dumps(columns),
        "predictions": dumps(record.predictions),
        "probabilities": dumps(record.probabilities),
    }


def _window_frame(chunk: list[tuple[int, int, list[int]]], found: dict) -> pd.DataFrame:
    """The window's rows from one chunk of records: the wanted positions of each."""
    builder = ColumnsBuilder()
    pids: list[str] = []
    created: list[float] = []
    predictions: list[Any] = []
    probabilities: list[dict] = []
    for record_id, size, offsets in chunk:
        record = found.get(record_id)
        if record is None:
            continue  # pruned since the window was planned
        builder.add(loads(record.instances), offsets, size)
        preds = loads(record.predictions)
        predictions.extend(preds if len(offsets) == size else [preds[o] for o in offsets])
        pids.extend(prediction_id(record.request_id, o) for o in offsets)
        created.extend([record.created_at] * len(offsets))
        if "probabilities" in record._fields:
            probs = loads(record.probabilities)
            probabilities.extend(row(probs, o) for o in offsets)
    columns = [("prediction_id", pids), ("created_at", created), ("prediction", predictions)]
    if probabilities:
        columns.append(("probabilities", probabilities))
    return builder.frame(columns)


@contextmanager
def _no_gc():
    """The cyclic garbage collector paused while parsing: parsing makes no cycles, but with
    small requests it makes dozens of containers per row, and the collector walking them (and
    everything else the process holds) over and over tripled the cost of a read."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
