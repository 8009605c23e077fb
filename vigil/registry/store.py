"""The model registry: every saved model with its contract and artifacts, and the production
pointer with its history, in the same database as the inference log.

With ``VIGIL_DATABASE_URL=postgresql://...`` every replica, monitor and training job shares
one registry; by default it is the SQLite file under ``VIGIL_HOME``. Both run through this
code and the tables of ``vigil.store.tables``, made and versioned by the migrations with
the log's: a registry on an empty database creates the schema, one on an older or newer
schema is refused (``RegistrySchemaError``) until ``python -m vigil.db upgrade``.

- A model's artifacts (``pipeline.joblib`` or ``pipeline.skops``, ``reference.parquet``,
  ``contract.json`` and any others, such as an ONNX export) are stored content-addressed by sha256
  (``vigil.registry.artifacts``), cached under ``VIGIL_HOME/artifacts`` and verified on every read:
  a model whose bytes are not what was saved is refused, never unpickled. Training signs each
  model (``vigil.registry.signing``); with ``VIGIL_REQUIRE_SIGNED_MODELS`` a model whose signature
  does not verify is refused before any of it is read.
- Training also saves each model to BentoML's model store under ``vigil-model`` (the tag is
  BentoML's), but serving reads only the registry: a replica with an empty ``VIGIL_HOME``
  serves the production model.
- Exactly one model is production. A promotion or rollback is one transaction that locks the
  pointer row (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so
  concurrent ones cannot interleave; each bumps the pointer's revision, which replicas poll.
- Only ``vigil-model:<version>`` tags are accepted, checked before any lookup.
"""

from __future__ import annotations

import getpass
import io
import json
import os
import re
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from vigil.registry import signing
from vigil.registry.artifacts import ArtifactIntegrityError, ArtifactStore
from vigil.registry.schema import RegistryError, RegistrySchemaError, create_registry_schema
from vigil.registry.signing import SIGNATURE, ModelSignatureError
from vigil.schema import FeatureSchema
from vigil.store.engine import engine_for
from vigil.store.tables import CANDIDATE_ID, POINTER_ID, candidate_tables, registry_tables
from vigil.tasks import Task, task_for
from vigil.text import one_line

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ArtifactIntegrityError",
    "InvalidTag",
    "MissingModelCode",
    "ModelBundle",
    "ModelSignatureError",
    "NO_PRODUCTION",
    "NoProductionModel",
    "ProductionChanged",
    "Registry",
    "RegistryError",
    "RegistrySchemaError",
    "UnknownModel",
]

MODEL_NAME = "vigil-model"
LABEL_COLUMN = "__label__"
PREDICTION_COLUMN = "__prediction__"
PIPELINE = "pipeline.joblib"
# A model registered from a .skops file is stored as skops, loaded with the types its
# contract trusts (``skops_trusted``): serving never unpickles it.
SKOPS_PIPELINE = "pipeline.skops"
CONTRACT = "contract.json"
REFERENCE = "reference.parquet"
# Rollbacks reach this many production models back; older ones drop off the stack (every
# worker reads it once a second, so it must stay small).
ROLLBACK_DEPTH = 20
_TAG = re.compile(rf"^{MODEL_NAME}:[a-z0-9][a-z0-9_.-]{{0,63}}$")
_ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_schema_ready: set[tuple[str, str]] = set()


class NoProductionModel(LookupError):
    """No model has been promoted to production yet (or none to roll back to)."""


# ``expect=NO_PRODUCTION``: the change is meant for a registry with no production model yet.
NO_PRODUCTION = ""


class ProductionChanged(RuntimeError):
    """Production is not what the caller read before deciding (compare-and-set failed): someone
    promoted or rolled back in between. The message names who, when and to what."""


class UnknownModel(LookupError):
    """No model with this tag in the registry."""


class InvalidTag(ValueError):
    """Not a ``vigil-model:<version>`` tag."""


class MissingModelCode(ImportError):
    """The model's pipeline uses a module this process cannot import (a user's own classes);
    the message names it in one line."""


def load_model_bytes(data: bytes, fmt: str, trusted: list[str], what: str) -> Any:
    """A fitted model from its stored bytes: ``skops`` (only ``trusted`` types) or
    ``joblib``. A module that cannot be imported is ``MissingModelCode`` naming it."""
    try:
        if fmt == "skops":
            import skops.io

            return skops.io.loads(data, trusted=trusted)
        import joblib

        return joblib.load(io.BytesIO(data))
    except ModuleNotFoundError as exc:
        raise MissingModelCode(
            f"{what} needs the Python module {exc.name!r}, which cannot be imported here: "
            "install the package that defines it in this environment or add it to PYTHONPATH"
        ) from None


def check_tag(tag: object) -> str:
    """``tag`` if it is a ``vigil-model:<version>`` tag; ``InvalidTag`` otherwise."""
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise InvalidTag(
            f"{str(tag)[:100]!r} is not a model tag: only {MODEL_NAME}:<version> is accepted"
        )
    return tag


@dataclass(frozen=True)
class Pointer:
    tag: str | None
    revision: int  # +1 at every promotion or rollback
    changed_at: float | None
    previous: tuple[str, ...]  # what rollbacks return to, most recent last


@dataclass(frozen=True)
class Promotion:
    revision: int
    action: str  # promote | rollback
    tag: str
    previous: str | None
    at: float
    by: str


@dataclass(frozen=True)
class ModelRecord:
    """A saved model as the registry lists it (no artifact bytes read)."""

    tag: str
    created_at: float
    contract: dict[str, Any]
    metrics: dict[str, Any]
    dataset_sha256: str | None
    git_commit: str | None
    parent: str | None
    artifacts: dict[str, dict[str, Any]]  # name -> {"sha256", "size"}


@dataclass
class ModelBundle:
    """A model to serve. Its contract is read (and verified) at load; the pipeline and the
    reference sample only on first use, each after its bytes are verified."""

    tag: str
    contract: dict[str, Any]
    artifacts: Mapping[str, str]  # name -> sha256
    store: ArtifactStore = field(repr=False)
    _pipeline: Any = field(default=None, repr=False)
    _reference: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def schema(self) -> FeatureSchema:
        return FeatureSchema.from_dict(self.contract["schema"])

    @property
    def metrics(self) -> dict[str, float]:
        return self.contract.get("metrics", {})

    @property
    def task(self) -> Task:
        return task_for(self.contract)

    def artifact_bytes(self, name: str) -> bytes:
        """The verified bytes of artifact ``name`` (``KeyError`` when the model has none)."""
        return self.store.read(self.artifacts[name], f"artifact {name} of {self.tag}")

    def artifact_path(self, name: str) -> Path:
        """A local file with the verified bytes of artifact ``name`` (``KeyError`` when the
        model has none). Content-addressed: never written to, shared by models."""
        return self.store.path(self.artifacts[name], f"artifact {name} of {self.tag}")

    @property
    def pipeline(self) -> Any:
        """The fitted model, loaded from the bytes just verified (not from a file that could
        change after); ``MissingModelCode`` when it needs a module this process lacks."""
        if self._pipeline is None:
            what = f"model {self.tag}"
            if SKOPS_PIPELINE in self.artifacts:
                trusted = list(self.contract.get("skops_trusted") or [])
                data = self.artifact_bytes(SKOPS_PIPELINE)
                self._pipeline = load_model_bytes(data, "skops", trusted, what)
            else:
                data = self.artifact_bytes(PIPELINE)
                self._pipeline = load_model_bytes(data, "joblib", [], what)
        return self._pipeline

    @property
    def reference(self) -> pd.DataFrame:
        """Training features plus ``__label__`` and ``__prediction__``."""
        import pandas as pd

        if self._reference is None:
            self._reference = pd.read_parquet(io.BytesIO(self.artifact_bytes(REFERENCE)))
        return self._reference


def who() -> str:
    """Who makes a change: user@host, for the history."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"[:200]


class Registry:
    def __init__(self, settings):
        self.settings = settings
        self.url = settings.resolved_database_url
        self.prefix = settings.table_prefix
        self.engine = engine_for(self.url, settings.log_timeout_seconds)
        self.tables = registry_tables(self.prefix)
        self.store = ArtifactStore(self.engine, self.tables, settings.home_dir / "artifacts")

    # -- database access -----------------------------------------------------------------

    def create_schema(self) -> None:
        create_registry_schema(self.engine, self.prefix, manage=self.settings.manage_schema)
        _schema_ready.add((self.url, self.prefix))

    @contextmanager
    def transaction(self, *, lock: bool = False) -> Iterator[Connection]:
        """One transaction; ``lock`` takes the write lock at its start on SQLite (PostgreSQL
        locks the pointer row with FOR UPDATE where it is read)."""
        if (self.url, self.prefix) not in _schema_ready:
            self.create_schema()
        try:
            with self.engine.connect() as conn:
                # SQLite: BEGIN at the start, so the transaction reads one snapshot.
                conn = conn.execution_options(sqlite_begin=True, sqlite_immediate=lock)
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            if isinstance(exc, IntegrityError):
                raise
            raise RegistryError(f"model registry unavailable: {one_line(exc)}") from exc

    # -- models --------------------------------------------------------------------------

    def _bentoml_store(self):
        from bentoml._internal.models.model import ModelStore

        # An explicit store rather than BENTOML_HOME: BentoML caches that path per process.
        path = Path(self.settings.bentoml_home) / "models"
        path.mkdir(parents=True, exist_ok=True)
        return ModelStore(str(path))

    def save(
        self,
        pipeline: Any,
        contract: dict[str, Any],
        reference: pd.DataFrame,
        artifacts: Mapping[str, bytes] | None = None,
    ) -> str:
        """Save a model with its contract (which must hold ``schema``) and any further
        artifacts (name -> bytes, e.g. an ONNX export); returns its tag. Given
        ``pipeline.skops`` among them, the model is stored as that and not pickled."""
        import bentoml
        import joblib

        extra = dict(artifacts or {})
        for name, data in extra.items():
            if not _ARTIFACT_NAME.match(name) or name in (PIPELINE, CONTRACT, REFERENCE, SIGNATURE):
                raise ValueError(f"artifact name {name!r} is reserved or not a plain file name")
            if not isinstance(data, bytes | bytearray | memoryview):
                raise TypeError(f"artifact {name!r} must be bytes, not {type(data).__name__}")
        files = {REFERENCE: _parquet(reference)}
        if SKOPS_PIPELINE not in extra:
            buffer = io.BytesIO()
            joblib.dump(pipeline, buffer)
            files[PIPELINE] = buffer.getvalue()
        files.update({name: bytes(data) for name, data in extra.items()})

        summary = {
            k: contract[k]
            for k in ("metrics", "dataset_sha256", "git_commit")
            if contract.get(k) is not None  # BentoML metadata rejects None
        }
        # The BentoML store keeps a copy (and names the version); serving reads the registry.
        with bentoml.models.create(
            MODEL_NAME, metadata=summary, _model_store=self._bentoml_store()
        ) as model:
            tag = check_tag(str(model.tag))
            for name, data in files.items():
                (Path(model.path) / name).write_bytes(data)
            full = {**contract, "tag": tag}
            files[CONTRACT] = json.dumps(full, indent=2, default=str).encode()
            (Path(model.path) / CONTRACT).write_bytes(files[CONTRACT])

        lineage = full.get("lineage") or {}
        t = self.tables
        key = self.settings.model_signing_key
        with self.transaction() as conn:
            digests = {name: self.store.put(conn, data) for name, data in files.items()}
            if key is not None:  # training's key: proof of where the model comes from
                files[SIGNATURE] = signing.sign(key.get_secret_value(), tag, digests)
                digests[SIGNATURE] = self.store.put(conn, files[SIGNATURE])
            conn.execute(
                t.models.insert().values(
                    tag=tag,
                    created_at=time.time(),
                    contract=files[CONTRACT].decode(),
                    metrics=json.dumps(full.get("metrics") or {}),
                    dataset_sha256=_short(full.get("dataset_sha256")),
                    git_commit=_short(full.get("git_commit")),
                    parent=lineage.get("parent"),
                )
            )
            conn.execute(
                t.artifacts.insert(),
                [
                    {"tag": tag, "name": name, "sha256": digests[name], "size": len(data)}
                    for name, data in files.items()
                ],
            )
        return tag

    def load(self, tag: str) -> ModelBundle:
        """The model ``tag`` with its verified contract; ``UnknownModel`` if there is none."""
        check_tag(tag)
        a = self.tables.artifacts
        with self.transaction() as conn:
            rows = conn.execute(sa.select(a.c.name, a.c.sha256).where(a.c.tag == tag)).all()
        digests = {name: digest for name, digest in rows}
        if CONTRACT not in digests:
            raise UnknownModel(f"model {tag} not found in the registry")
        # Origin before anything of the model is read: ModelSignatureError when it fails.
        signature = (
            self.store.read(digests[SIGNATURE], f"signature of {tag}")
            if SIGNATURE in digests
            else None
        )
        signing.verify(
            self.settings.model_verify_key,
            tag,
            digests,
            signature,
            required=self.settings.require_signed_models,
        )
        contract = json.loads(self.store.read(digests[CONTRACT], f"contract of {tag}"))
        return ModelBundle(tag=tag, contract=contract, artifacts=digests, store=self.store)

    def tags(self) -> list[str]:
        """Every saved model, oldest first."""
        m = self.tables.models
        with self.transaction() as conn:
            return list(conn.scalars(sa.select(m.c.tag).order_by(m.c.id)))

    def models(self) -> list[ModelRecord]:
        """Every saved model's record, oldest first."""
        return self._records(None)

    def model(self, tag: str) -> ModelRecord:
        check_tag(tag)
        found = self._records(tag)
        if not found:
            raise UnknownModel(f"model {tag} not found in the registry")
        return found[0]

    def _records(self, tag: str | None) -> list[ModelRecord]:
        m, a = self.tables.models, self.tables.artifacts
        models = sa.select(m).order_by(m.c.id)
        files = sa.select(a).order_by(a.c.name)
        if tag is not None:
            models, files = models.where(m.c.tag == tag), files.where(a.c.tag == tag)
        with self.transaction() as conn:
            rows = conn.execute(models).all()
            by_tag: dict[str, dict] = {}
            for f in conn.execute(files):
                by_tag.setdefault(f.tag, {})[f.name] = {"sha256": f.sha256, "size": f.size}
        return [
            ModelRecord(
                tag=r.tag,
                created_at=r.created_at,
                contract=json.loads(r.contract),
                metrics=json.loads(r.metrics),
                dataset_sha256=r.dataset_sha256,
                git_commit=r.git_commit,
                parent=r.parent,
                artifacts=by_tag.get(r.tag, {}),
            )
            for r in rows
        ]

    # -- production pointer --------------------------------------------------------------

    def pointer(self) -> Pointer:
        """The production pointer as it is now (one small row: cheap enough to poll)."""
        p = self.tables.production
        with self.transaction() as conn:
            row = conn.execute(sa.select(p).where(p.c.id == POINTER_ID)).one()
        return _pointer(row)

    def production_tag(self) -> str | None:
        return self.pointer().tag

    def load_production(self) -> ModelBundle:
        tag = self.production_tag()
        if tag is None:
            raise NoProductionModel(
                f"no production model in the registry at {_where(self.url)} "
                "(run `make train` or `python -m training.train --promote`)"
            )
        return self.load(tag)

    def history(self) -> list[Promotion]:
        """Every promotion and rollback, oldest first."""
        h = self.tables.history
        with self.transaction() as conn:
            rows = conn.execute(sa.select(h).order_by(h.c.revision)).all()
        return [Promotion(r.revision, r.action, r.tag, r.previous, r.at, r.by) for r in rows]

    def promote(self, tag: str, *, by: str | None = None, expect: str | None = None) -> None:
        """Make ``tag`` the one production model; the previous one goes on the rollback stack.
        Promoting the current production model changes nothing.

        ``expect``: the production tag the caller decided on (``NO_PRODUCTION`` for none);
        checked under the pointer's lock, ``ProductionChanged`` when it is no longer so."""
        check_tag(tag)
        m = self.tables.models
        with self._locked() as (conn, current):
            self._check_expected(conn, current, expect)
            if conn.scalar(sa.select(m.c.id).where(m.c.tag == tag)) is None:
                raise UnknownModel(f"model {tag} not found in the registry")
            if current.tag == tag:
                return
            stack = [*current.previous, current.tag] if current.tag else list(current.previous)
            self._move(conn, current, "promote", tag, stack[-ROLLBACK_DEPTH:], by)

    def rollback(self, *, by: str | None = None, expect: str | None = None) -> str:
        """Return to the previous production model; returns its tag. ``expect`` as for
        ``promote``."""
        with self._locked() as (conn, current):
            self._check_expected(conn, current, expect)
            if not current.previous:
                raise NoProductionModel(self._nothing_to_roll_back_to(conn, current))
            *stack, tag = current.previous
            self._move(conn, current, "rollback", tag, stack, by)
        return tag

    def _nothing_to_roll_back_to(self, conn, current: Pointer) -> str:
        """Why a rollback cannot happen: what the stack holds, and how to go forward again
        when production is itself the result of a rollback."""
        if current.tag is None:
            return "no production model yet: nothing to roll back to"
        text = (
            "no previous production model to roll back to: the rollback stack is empty: "
            f"production {current.tag} has no model before it"
        )
        h = self.tables.history
        last = conn.execute(sa.select(h).where(h.c.revision == current.revision)).first()
        if last is not None and last.action == "rollback" and last.previous:
            text += (
                f"; {last.previous} was rolled back from: `python -m training.promote "
                f"{last.previous}` makes it production again"
            )
        return text

    def _check_expected(self, conn, current: Pointer, expect: str | None) -> None:
        if expect is None or (current.tag or NO_PRODUCTION) == expect:
            return
        h = self.tables.history
        last = conn.execute(sa.select(h).where(h.c.revision == current.revision)).first()
        change = (
            f" by {last.by} at {_iso(last.at)} ({last.action}, revision {last.revision})"
            if last is not None
            else ""
        )
        raise ProductionChanged(
            f"production is {current.tag or 'empty'}, not {expect or 'empty'} as expected: "
            f"changed{change}; nothing done"
        )

    def collect(self, keep_latest: int = 20) -> tuple[list[str], int]:
        """Delete the models nothing refers to, and the stored bytes only they used: all but
        production, the rollback stack, the running candidate (shadow or canary) and the
        ``keep_latest`` newest saved. Under the pointer's lock and the candidate's, so no
        promotion or candidate start picks a model being deleted. Returns the tags deleted
        and the number of blobs freed."""
        m, a, b = self.tables.models, self.tables.artifacts, self.tables.blobs
        c = candidate_tables(self.prefix).candidate
        with self._locked() as (conn, current):
            # The candidate row locked after the pointer's, in the order Candidates.start takes
            # them: it reads the pointer without a lock, so the two never wait on each other.
            candidate = conn.execute(
                sa.select(c.c.tag, c.c.mode).where(c.c.id == CANDIDATE_ID).with_for_update()
            ).one()
            newest = conn.scalars(sa.select(m.c.tag).order_by(m.c.id.desc()).limit(keep_latest))
            named = [current.tag, candidate.tag if candidate.mode else None]
            keep = {*newest, *current.previous, *(t for t in named if t)}
            doomed = [t for t in conn.scalars(sa.select(m.c.tag)) if t not in keep]
            for chunk in range(0, len(doomed), 500):
                tags = doomed[chunk : chunk + 500]
                conn.execute(a.delete().where(a.c.tag.in_(tags)))
                conn.execute(m.delete().where(m.c.tag.in_(tags)))
            freed = conn.execute(
                b.delete().where(~b.c.sha256.in_(sa.select(a.c.sha256).distinct()))
            ).rowcount
        return doomed, int(freed or 0)

    def referenced_digests(self) -> set[str]:
        """The artifact digests of production and the rollback stack: what a local cache
        keeps (``ArtifactStore.prune_cache``)."""
        pointer = self.pointer()
        tags = [*pointer.previous, *([pointer.tag] if pointer.tag else [])]
        a = self.tables.artifacts
        with self.transaction() as conn:
            return set(conn.scalars(sa.select(a.c.sha256).where(a.c.tag.in_(tags))))

    @contextmanager
    def _locked(self) -> Iterator[tuple[Connection, Pointer]]:
        p = self.tables.production
        with self.transaction(lock=True) as conn:
            row = conn.execute(sa.select(p).where(p.c.id == POINTER_ID).with_for_update()).one()
            yield conn, _pointer(row)

    def _move(self, conn, current: Pointer, action: str, tag: str, stack: list, by) -> None:
        p, h = self.tables.production, self.tables.history
        now, revision = time.time(), current.revision + 1
        conn.execute(
            p.update()
            .where(p.c.id == POINTER_ID)
            .values(tag=tag, previous=json.dumps(stack), revision=revision, changed_at=now)
        )
        conn.execute(
            h.insert().values(
                revision=revision,
                action=action,
                tag=tag,
                previous=current.tag,
                at=now,
                by=(by or who())[:200],
            )
        )


def _pointer(row) -> Pointer:
    return Pointer(row.tag, int(row.revision), row.changed_at, tuple(json.loads(row.previous)))


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _short(value: Any) -> str | None:
    return None if value is None else str(value)[:64]


def _where(url: str) -> str:
    """The database named without credentials."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the configured database"
