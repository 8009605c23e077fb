"""Follow the registry's two pointers in one worker: a promotion or rollback (the production
pointer) and a candidate start or stop (the candidate pointer) made on any machine reach a
running worker without a restart.

Once a second each worker reads both pointers in one query (two one-row tables, in a thread
so that a slow database never blocks the event loop). Every change bumps a pointer's revision.
On a new production revision the worker compares the tag with the one it serves and, if it
differs, loads that model in a thread (the event loop keeps answering with the old one; the
artifacts are fetched, verified by sha256 and unpickled there) and swaps it in
(``WorkerState.swap``). On a new candidate revision it loads the candidate the same way and
starts or stops it (``WorkerState.set_candidate``) as a shadow (``service.shadow``) or a canary
(``service.canary``). A model that fails to load or to verify leaves serving as it was, is
logged and counted, and is retried every ``retry`` seconds until its pointer moves again or the
load works.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from service.canary import ActiveCandidate
from service.worker import WorkerState
from vigil.registry.candidates import Candidate, Candidates, Pointers
from vigil.registry.store import Registry

logger = logging.getLogger(__name__)

CHECK_SECONDS = 1.0
RETRY_SECONDS = 10.0
# How often a worker removes, from the pod's artifact cache, what neither production nor the
# rollback stack uses, and temporary files left by a crash (the emptyDir has a size limit).
CACHE_PRUNE_SECONDS = 3600.0


class PointerWatch:
    """Reads both pointers (a blocking read); warns once per outage, not once a second."""

    def __init__(self, registry: Registry | None = None, *, candidates: Candidates | None = None):
        self.candidates = candidates or Candidates(registry)
        self._seen: Pointers | None = None
        self._unreachable = False

    def look(self) -> Pointers | None:
        """Both pointers now; None while the database cannot be read."""
        try:
            pointers = self.candidates.pointers()
        except Exception as exc:
            if not self._unreachable:
                logger.warning("cannot read the registry's pointers (%s); still serving", exc)
            self._unreachable = True
            return None
        self._unreachable = False
        return pointers

    def changed(self) -> bool:
        """Whether either pointer's revision moved since the last look."""
        pointers = self.look()
        if pointers is None or pointers == self._seen:
            return False
        self._seen = pointers
        return True


class Debounce:
    """When a pointer's change is next due: at once on a new revision, ``retry`` seconds after
    a failed load, never once it is applied."""

    def __init__(self, retry: float, due: float | None = None):
        self.retry = retry
        self.due = due
        self._seen: int | None = None

    def see(self, revision: int, now: float) -> None:
        if revision != self._seen:
            self._seen, self.due = revision, now

    def ready(self, now: float) -> bool:
        return self.due is not None and now >= self.due

    def done(self) -> None:
        self.due = None

    def failed(self, now: float) -> None:
        self.due = now + self.retry


class PointerFollower:
    """``current()`` gives the worker's WorkerState, or None while it is not started (its start
    reads the production pointer itself)."""

    def __init__(
        self,
        settings,
        current: Callable[[], WorkerState | None],
        *,
        retry: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        on_load_failure: Callable[[str, BaseException], object] = lambda tag, exc: None,
        candidates: Candidates | None = None,
    ):
        self.candidates = candidates or Candidates(Registry(settings))
        self.on_load_failure = on_load_failure  # counted: vigil_model_load_failures_total
        self.current = current
        self.retry = retry
        self.clock = clock
        self.watch = PointerWatch(candidates=self.candidates)
        # Compare tags once at the start: the pointer may have moved since the model loaded.
        self.production = Debounce(retry, due=clock())
        self.candidate = Debounce(retry)

    @property
    def registry(self) -> Registry:
        return self.candidates.registry

    async def run(self, interval: float = CHECK_SECONDS) -> None:
        pruned = -CACHE_PRUNE_SECONDS
        while True:
            try:
                await self.check()
                if self.clock() - pruned >= CACHE_PRUNE_SECONDS:
                    pruned = self.clock()
                    await asyncio.to_thread(self.prune_cache)
            except Exception:  # a bug here must not stop following the pointers
                logger.exception("pointer check failed")
            await asyncio.sleep(interval)

    def prune_cache(self) -> int:
        """Drop cached artifacts that production, the rollback stack and the model served
        here do not use, and stale temporary files; returns the files removed."""
        keep = self.registry.referenced_digests()
        runtime = self.current()
        if runtime is not None:
            keep |= set(runtime.model.bundle.artifacts.values())
        return self.registry.store.prune_cache(keep)

    async def check(self) -> bool:
        """One look at both pointers; True when this worker's model or candidate changed."""
        now = self.clock()
        pointers = await asyncio.to_thread(self.watch.look)
        runtime = self.current()
        if pointers is None or runtime is None:
            return False
        self.production.see(pointers.production_revision, now)
        self.candidate.see(pointers.candidate.revision, now)
        swapped = self.production.ready(now) and await self._follow_production(runtime, now)
        switched = self.candidate.ready(now) and await self._follow_candidate(
            runtime, pointers.candidate, now
        )
        return swapped or switched

    async def _follow_production(self, runtime: WorkerState, now: float) -> bool:
        serving = runtime.model.bundle.tag
        tag = None
        try:
            tag = await asyncio.to_thread(self.registry.production_tag)
            if tag is None or tag == serving:
                self.production.done()
                return False
            model = await asyncio.to_thread(runtime.load, tag)
        except Exception as exc:
            if tag is not None:
                self.on_load_failure(tag, exc)
            logger.error(
                "cannot load production model %s (%s: %s); still serving %s, retrying in %.0f s",
                tag, type(exc).__name__, exc, serving, self.retry,
            )  # fmt: skip
            self.production.failed(now)
            return False
        self.production.done()
        await runtime.swap(model)
        return True

    async def _follow_candidate(self, runtime: WorkerState, pointer: Candidate, now: float) -> bool:
        running = runtime.candidate
        if not pointer.active:
            self.candidate.done()
            if running is None:
                return False
            await runtime.set_candidate(None)
            return True
        if running is not None and running.tag == pointer.tag:
            self.candidate.done()
            if (running.mode, running.percent) == (pointer.mode, pointer.percent):
                return False
            await runtime.set_candidate(
                ActiveCandidate(pointer.mode, pointer.percent, running.model)
            )
            return True
        try:
            model = await asyncio.to_thread(runtime.load, pointer.tag)
        except Exception as exc:
            if runtime.metrics is not None:
                runtime.metrics.candidate_failure(pointer.tag, "load", 0)
            logger.error(
                "cannot load candidate %s (%s: %s); serving goes on without it, retrying in %.0f s",
                pointer.tag, type(exc).__name__, str(exc)[:300], self.retry,
            )  # fmt: skip
            self.candidate.failed(now)
            return False
        self.candidate.done()
        await runtime.set_candidate(ActiveCandidate(pointer.mode, pointer.percent, model))
        return True
