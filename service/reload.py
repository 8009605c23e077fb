"""Follow the production pointer: a promotion or rollback made on any machine reaches a running
worker without a restart.

Once a second each worker reads the registry's pointer row (one small row: a primary-key
look-up, in a thread so that a slow database never blocks the event loop). Every promotion or
rollback bumps its revision. On a new revision the worker compares the tag with the one it
serves and, if it differs, loads that model in a thread (the event loop keeps answering with
the old one; the artifacts are fetched, verified by sha256 and unpickled there) and swaps it in
(``WorkerState.swap``). A model that fails to load or to verify leaves the old one serving, is
logged, and is retried every ``retry`` seconds until the pointer moves again or the load works.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from service.worker import WorkerState
from vigil.registry.store import Registry

logger = logging.getLogger(__name__)

CHECK_SECONDS = 1.0
RETRY_SECONDS = 10.0
# How often a worker removes, from the pod's artifact cache, what neither production nor the
# rollback stack uses, and temporary files left by a crash (the emptyDir has a size limit).
CACHE_PRUNE_SECONDS = 3600.0


class PointerWatch:
    """Tells whether the pointer's revision moved since the last look (a blocking read)."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self._seen: int | None = None
        self._unreachable = False

    def changed(self) -> bool:
        try:
            revision = self.registry.pointer().revision
        except Exception as exc:
            if not self._unreachable:  # once per outage, not once a second
                logger.warning("cannot read the production pointer (%s); still serving", exc)
            self._unreachable = True
            return False
        self._unreachable = False
        if revision == self._seen:
            return False
        self._seen = revision
        return True


class Reloader:
    """``current()`` gives the worker's WorkerState, or None while it is not started (its start
    reads the pointer itself)."""

    def __init__(
        self,
        settings,
        current: Callable[[], WorkerState | None],
        *,
        retry: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        on_load_failure: Callable[[str, BaseException], object] = lambda tag, exc: None,
    ):
        self.registry = Registry(settings)
        self.on_load_failure = on_load_failure  # counted: vigil_model_load_failures_total
        self.current = current
        self.retry = retry
        self.clock = clock
        self.watch = PointerWatch(self.registry)
        # Compare tags once at the start: the pointer may have moved since the model loaded.
        self._due: float | None = clock()

    async def run(self, interval: float = CHECK_SECONDS) -> None:
        pruned = -CACHE_PRUNE_SECONDS
        while True:
            try:
                await self.check()
                if self.clock() - pruned >= CACHE_PRUNE_SECONDS:
                    pruned = self.clock()
                    await asyncio.to_thread(self.prune_cache)
            except Exception:  # a bug here must not stop following the pointer
                logger.exception("model reload check failed")
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
        """One look; True when a new model was swapped in."""
        now = self.clock()
        if await asyncio.to_thread(self.watch.changed):
            self._due = now
        runtime = self.current()
        if self._due is None or now < self._due or runtime is None:
            return False
        serving = runtime.model.bundle.tag
        tag = None
        try:
            tag = await asyncio.to_thread(self.registry.production_tag)
            if tag is None or tag == serving:
                self._due = None
                return False
            model = await asyncio.to_thread(runtime.load, tag)
        except Exception as exc:
            if tag is not None:
                self.on_load_failure(tag, exc)
            logger.error(
                "cannot load production model %s (%s: %s); still serving %s, retrying in %.0f s",
                tag, type(exc).__name__, exc, serving, self.retry,
            )  # fmt: skip
            self._due = now + self.retry
            return False
        self._due = None
        await runtime.swap(model)
        return True
