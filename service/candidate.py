"""Following the registry's candidate pointer (``vigil.registry.candidates``) in one worker:
the candidate is loaded in a thread (the worker keeps answering meanwhile), then started or
stopped as a shadow (``service.shadow``) or a canary (``service.canary``). A candidate that fails
to load is logged and counted (``vigil_candidate_failures_total{stage}``) and serving goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from service.canary import ActiveCandidate
from vigil.registry.candidates import Candidates
from vigil.registry.store import Registry

if TYPE_CHECKING:
    from service.worker import WorkerState

logger = logging.getLogger(__name__)

CHECK_SECONDS = 1.0
RETRY_SECONDS = 10.0


class CandidateFollower:
    """Follows the candidate pointer once a second: loads the candidate in a thread (the
    worker keeps answering meanwhile), then starts or stops it; a candidate that fails to load
    is logged, counted and retried every ``retry`` seconds, and serving goes on."""

    def __init__(
        self,
        settings,
        current: Callable[[], WorkerState | None],
        *,
        retry: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        candidates: Candidates | None = None,
    ):
        self.candidates = candidates or Candidates(Registry(settings))
        self.current = current
        self.retry = retry
        self.clock = clock
        self._seen: int | None = None
        self._due: float | None = None
        self._unreachable = False

    async def run(self, interval: float = CHECK_SECONDS) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                logger.exception("candidate check failed")
            await asyncio.sleep(interval)

    async def check(self) -> bool:
        """One look; True when this worker's candidate changed."""
        runtime = self.current()
        if runtime is None:
            return False
        try:
            pointer = await asyncio.to_thread(self.candidates.current)
        except Exception as exc:
            if not self._unreachable:
                logger.warning("cannot read the candidate pointer (%s)", exc)
            self._unreachable = True
            return False
        self._unreachable = False
        now = self.clock()
        if pointer.revision != self._seen:
            self._seen, self._due = pointer.revision, now
        if self._due is None or now < self._due:
            return False
        running = runtime.candidate
        if not pointer.active:
            self._due = None
            if running is None:
                return False
            await runtime.set_candidate(None)
            return True
        if running is not None and running.tag == pointer.tag:
            self._due = None
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
            self._due = now + self.retry
            return False
        self._due = None
        await runtime.set_candidate(ActiveCandidate(pointer.mode, pointer.percent, model))
        return True
