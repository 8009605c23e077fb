"""A candidate model tried on live traffic, as the registry records it: the candidate pointer
beside the production pointer (a shadow or a canary, never both), its history, and the
monitor's verdicts on it.

A start or stop is one transaction that locks the candidate row (as promotions lock the
production row) and bumps its revision; every replica polls that revision once a second
(``service.follow``, in the same query as the production pointer) and follows within seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vigil.registry.store import Registry, UnknownModel, check_tag, who
from vigil.schema import FeatureSchema
from vigil.store.tables import CANDIDATE_ID, POINTER_ID, candidate_tables
from vigil.tasks import task_for

SHADOW = "shadow"
CANARY = "canary"
MODES = (SHADOW, CANARY)


class CandidateConflict(RuntimeError):
    """A different candidate (or the other mode) is already running; the message says which."""


class CandidateMisfit(ValueError):
    """The candidate cannot take production's requests (another task, other features or
    fewer categories); the message names the difference."""


def fit_problem(production: Mapping[str, Any], candidate: Mapping[str, Any]) -> str | None:
    """None when a model of contract ``candidate`` can take every request production (of
    contract ``production``) accepts: same task, same feature names and kinds, and each
    categorical feature knowing at least production's categories. Otherwise the differences,
    in one line."""
    theirs, mine = task_for(production).name, task_for(candidate).name
    if theirs != mine:
        return f"task {mine}, production's is {theirs}"
    prod = FeatureSchema.from_dict(production["schema"])
    cand = FeatureSchema.from_dict(candidate["schema"])
    problems = []
    lacks = [name for name in prod.names if name not in cand]
    if lacks:
        problems.append(f"lacks production's features {_names(lacks)}")
    extra = [name for name in cand.names if name not in prod]
    if extra:
        problems.append(f"needs features production's requests lack: {_names(extra)}")
    for name in (n for n in prod.names if n in cand):
        was, now = prod[name], cand[name]
        if was.kind != now.kind:
            problems.append(f"feature {name!r} is {now.kind}, production's is {was.kind}")
        elif unknown := [c for c in was.categories if c not in set(now.categories)]:
            problems.append(f"feature {name!r} lacks production's categories {_names(unknown)}")
    return "; ".join(problems[:5]) or None


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


@dataclass(frozen=True)
class Candidate:
    tag: str | None
    mode: str | None  # shadow | canary | None
    percent: float  # canary share of requests, 0-100
    revision: int
    changed_at: float | None

    @property
    def active(self) -> bool:
        return self.tag is not None and self.mode is not None


@dataclass(frozen=True)
class Pointers:
    """Both pointers as one poll sees them: production's revision and the candidate."""

    production_revision: int
    candidate: Candidate


@dataclass(frozen=True)
class CandidateEvent:
    revision: int
    action: str  # start | stop
    mode: str
    tag: str
    percent: float
    at: float
    by: str


@dataclass(frozen=True)
class Verdict:
    candidate_version: str
    model_version: str
    mode: str
    checked_at: float
    labeled_rows: int
    better: bool | None
    figures: dict[str, Any]


class Candidates:
    """The candidate records of ``registry`` (same database, same schema version)."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self.tables = candidate_tables(registry.prefix)

    def current(self) -> Candidate:
        """The candidate pointer as it is now (one small row: cheap enough to poll)."""
        c = self.tables.candidate
        with self.registry.transaction() as conn:
            row = conn.execute(sa.select(c).where(c.c.id == CANDIDATE_ID)).one()
        return _candidate(row)

    def pointers(self) -> Pointers:
        """Production's revision and the candidate pointer in one query (two one-row tables),
        what every replica polls."""
        c, p = self.tables.candidate, self.registry.tables.production
        production = sa.select(p.c.revision).where(p.c.id == POINTER_ID).scalar_subquery()
        stmt = sa.select(c, production.label("production_revision")).where(c.c.id == CANDIDATE_ID)
        with self.registry.transaction() as conn:
            row = conn.execute(stmt).one()
        return Pointers(int(row.production_revision), _candidate(row))

    def start(
        self,
        tag: str,
        mode: str,
        percent: float = 0.0,
        *,
        by: str | None = None,
        force: bool = False,
    ) -> None:
        """Start ``tag`` as a shadow or a canary of ``percent`` %. Refused
        (``CandidateConflict``) while another candidate or the other mode runs, and for the
        production model itself; starting what already runs changes only a canary's percent.
        A candidate that does not fit production (``fit_problem``) is refused
        (``CandidateMisfit``) unless ``force``."""
        check_tag(tag)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        percent = float(percent) if mode == CANARY else 0.0
        m = self.registry.tables.models
        with self._locked() as (conn, now):
            contract = conn.scalar(sa.select(m.c.contract).where(m.c.tag == tag))
            if contract is None:
                raise UnknownModel(f"model {tag} not found in the registry")
            production = self.registry.tables.production
            current = conn.scalar(sa.select(production.c.tag))
            if current == tag:
                raise CandidateConflict(f"{tag} is the production model already")
            if current is not None and not force:
                theirs = conn.scalar(sa.select(m.c.contract).where(m.c.tag == current))
                problem = fit_problem(json.loads(theirs), json.loads(contract))
                if problem is not None:
                    raise CandidateMisfit(_misfit(tag, current, problem))
            if now.active and (now.mode != mode or now.tag != tag):
                raise CandidateConflict(
                    f"a {now.mode} of {now.tag} is running: stop it first "
                    f"(python -m training.models {now.mode} --stop); a canary and a shadow "
                    "are never both active"
                )
            if now.active and now.percent == percent:
                return
            self._move(conn, now, "start", tag, mode, percent, by)

    def stop(self, mode: str, *, by: str | None = None) -> Candidate:
        """Stop the running ``mode``; returns what ran. ``CandidateConflict`` when none does."""
        with self._locked() as (conn, now):
            if not now.active or now.mode != mode:
                running = f"a {now.mode} of {now.tag} runs" if now.active else "none runs"
                raise CandidateConflict(f"no {mode} to stop ({running})")
            self._move(conn, now, "stop", now.tag, mode, now.percent, by)
        return now

    def misfit(self, tag: str) -> str | None:
        """Why ``tag`` would not fit the production model as a candidate or in its place
        (``fit_problem``, naming both), or None when it fits or there is no production."""
        current = self.registry.production_tag()
        if current is None or current == tag:
            return None
        mine, theirs = self.registry.model(tag).contract, self.registry.model(current).contract
        problem = fit_problem(theirs, mine)
        return None if problem is None else _misfit(tag, current, problem)

    def history(self) -> list[CandidateEvent]:
        h = self.tables.history
        with self.registry.transaction() as conn:
            rows = conn.execute(sa.select(h).order_by(h.c.revision)).all()
        return [
            CandidateEvent(r.revision, r.action, r.mode, r.tag, r.percent, r.at, r.by) for r in rows
        ]

    @contextmanager
    def _locked(self) -> Iterator[tuple[Connection, Candidate]]:
        c = self.tables.candidate
        with self.registry.transaction(lock=True) as conn:
            row = conn.execute(sa.select(c).where(c.c.id == CANDIDATE_ID).with_for_update()).one()
            yield conn, _candidate(row)

    def _move(self, conn, now: Candidate, action, tag, mode, percent, by) -> None:
        c, h = self.tables.candidate, self.tables.history
        at, revision = time.time(), now.revision + 1
        running = action == "start"
        conn.execute(
            c.update()
            .where(c.c.id == CANDIDATE_ID)
            .values(
                tag=tag if running else None,
                mode=mode if running else None,
                percent=percent if running else 0.0,
                revision=revision,
                changed_at=at,
            )
        )
        conn.execute(
            h.insert().values(
                revision=revision,
                action=action,
                mode=mode,
                tag=tag,
                percent=percent,
                at=at,
                by=(by or who())[:200],
            )
        )

    # -- verdicts ------------------------------------------------------------------------

    def record_verdict(self, verdict: Verdict) -> None:
        v = self.tables.verdicts
        with self.registry.transaction() as conn:
            conn.execute(
                v.insert().values(
                    candidate_version=verdict.candidate_version,
                    model_version=verdict.model_version,
                    mode=verdict.mode,
                    checked_at=verdict.checked_at,
                    labeled_rows=verdict.labeled_rows,
                    better=None if verdict.better is None else int(verdict.better),
                    figures=json.dumps(verdict.figures, default=str),
                )
            )

    def latest_verdict(self, tag: str) -> Verdict | None:
        """The monitor's newest verdict on ``tag`` as a candidate, or None."""
        check_tag(tag)
        v = self.tables.verdicts
        stmt = sa.select(v).where(v.c.candidate_version == tag).order_by(v.c.id.desc()).limit(1)
        with self.registry.transaction() as conn:
            row = conn.execute(stmt).one_or_none()
        if row is None:
            return None
        return Verdict(
            row.candidate_version,
            row.model_version,
            row.mode,
            row.checked_at,
            row.labeled_rows,
            None if row.better is None else bool(row.better),
            json.loads(row.figures),
        )


def _misfit(tag: str, current: str, problem: str) -> str:
    return f"{tag} does not fit production {current}: {problem}"


def _candidate(row) -> Candidate:
    return Candidate(row.tag, row.mode, float(row.percent), int(row.revision), row.changed_at)
