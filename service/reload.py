"""Follow the production pointer: a promotion or rollback reaches a running worker without a
restart.

Once a second each worker stats ``production.json`` (cheap: no read, no parse). The registry
replaces the file with ``os.replace``, so a promotion shows as a new inode. On a change the
worker reads the tag and, if it differs from the one it serves, loads that model in a thread
(the event loop keeps answering with the old one) and swaps it in (``Runtime.swap``). A model
that fails to load leaves the old one serving, is logged, and is retried every ``retry``
seconds until the pointer moves again or the load works.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from service.runtime import Runtime
from vigil.registry import Registry

logger = logging.getLogger(__name__)

CHECK_SECONDS = 1.0
RETRY_SECONDS = 10.0


class PointerWatch:
    """Tells whether a file was replaced or rewritten since the last look."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._seen = self._stamp()

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def changed(self) -> bool:
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        return True


class Reloader:
    """``current()`` gives the worker's Runtime, or None while it is not started (its start
    reads the pointer itself)."""

    def __init__(
        self,
        settings,
        current: Callable[[], Runtime | None],
        *,
        retry: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.registry = Registry(settings)
        self.current = current
        self.retry = retry
        self.clock = clock
        self.watch = PointerWatch(self.registry.pointer)
        # Compare tags once at the start: the pointer may have moved since the model loaded.
        self._due: float | None = clock()

    async def run(self, interval: float = CHECK_SECONDS) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # a bug here must not stop following the pointer
                logger.exception("model reload check failed")
            await asyncio.sleep(interval)

    async def check(self) -> bool:
        """One look; True when a new model was swapped in."""
        now = self.clock()
        if self.watch.changed():
            self._due = now
        runtime = self.current()
        if self._due is None or now < self._due or runtime is None:
            return False
        serving = runtime.model.bundle.tag
        tag = None
        try:
            tag = self.registry.production_tag()
            if tag is None or tag == serving:
                self._due = None
                return False
            model = await asyncio.to_thread(runtime.load, tag)
        except Exception as exc:
            logger.error(
                "cannot load production model %s (%s: %s); still serving %s, retrying in %.0f s",
                tag, type(exc).__name__, exc, serving, self.retry,
            )  # fmt: skip
            self._due = now + self.retry
            return False
        self._due = None
        await runtime.swap(model)
        return True
