"""The leading monitor's housekeeping: the inference log's day partitions ahead, its retention
(requests and shadow rows), and the model registry's daily collection.

Only the leader runs it (``monitoring.leader``), and everything that deletes is fenced: the
leadership is confirmed on its own session just before, so a monitor that has just lost it
deletes nothing. A failure is logged and retried on the next tick (partitions, retention) or
the next day (collection); rows go to the default partition meanwhile.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from vigil.log.inference_log import InferenceLog
from vigil.log.shadow import ShadowLog
from vigil.registry.store import Registry

log = logging.getLogger(__name__)

COLLECT_SECONDS = 86_400.0  # the registry's collection of unreferenced models: daily


class Housekeeper:
    """``log``: the monitor's inference log, opened on first use; ``pruned``: the counter of
    rows retention deleted; ``confirm``: the leader's fence (True while this monitor leads)."""

    def __init__(self, settings, log: Callable[[], InferenceLog], pruned, confirm):
        self.settings = settings
        self._log = log
        self.pruned = pruned
        self.confirm = confirm
        self._collected_at = -math.inf  # time.time() of the last registry collection

    def tick(self) -> None:
        """What the leader does on every tick of its loop, before any check."""
        self.ensure_partitions()
        self.collect_registry()

    def ensure_partitions(self) -> None:
        """The log's partitions for today and the days ahead: the service's role may not
        create them (docs/deploy.md), so the monitor does, at most every few minutes."""
        try:
            self._log().ensure_partitions()
        except Exception as exc:  # rows go to the default partition meanwhile
            log.warning("inference log partitions not checked: %s", exc)

    def collect_registry(self, now: float | None = None) -> None:
        """Once every ``COLLECT_SECONDS``: delete the models nothing refers to and the bytes
        only they used (``Registry.collect``), then this pod's cached artifacts that are no
        longer production's or the rollback stack's. Fenced like the prune."""
        now = time.time() if now is None else now
        keep = self.settings.registry_keep_models
        if not keep or now - self._collected_at < COLLECT_SECONDS or not self.confirm():
            return
        self._collected_at = now
        try:
            registry = Registry(self.settings)
            tags, blobs = registry.collect(keep_latest=keep)
            cached = registry.store.prune_cache(registry.referenced_digests())
        except Exception as exc:  # the next day tries again
            log.warning("model registry collection failed: %s", exc)
            return
        if tags or blobs or cached:
            log.info(
                "model registry collection: %d models, %d blobs, %d cached files deleted",
                len(tags), blobs, cached,
            )  # fmt: skip

    def prune(self) -> None:
        """Retention: the log's requests and shadow rows older than
        ``log_retention_days`` (0 keeps everything). The caller holds the fence."""
        days = self.settings.log_retention_days
        if not days:
            return
        try:
            inference_log = self._log()
            removed = inference_log.prune(time.time() - days * 86400)
            ShadowLog(inference_log).prune(time.time() - days * 86400)
        except Exception as exc:  # retention can wait for the next run
            log.warning("inference log retention failed: %s", exc)
            return
        self.pruned.inc(removed)
        if removed:
            log.info("inference log retention: deleted %d rows older than %g days", removed, days)
