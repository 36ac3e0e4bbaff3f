"""Last uses and the size limit of the shared tier of cached files (issue 14), for the whole cluster.

Uses are batched in memory (a local-tier hit costs no database write): each file's at most once
per TOUCH_EVERY_S, all of them in one transaction every FLUSH_EVERY_S. Eviction runs after a file
is published and at start-up, on one replica at a time (``CachedFileRows.evict``): the least
recently used rows go first, then each blob no row lists any more.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import Any, TypeVar

import structlog

from proxy.core.errors import DatabaseUnavailable, ObjectStoreUnavailable
from proxy.storage.objects import ObjectStore, blob_key
from proxy.storage.sql.cached_files import CachedFileRows, row_key

T = TypeVar("T")
log = structlog.get_logger(__name__)
TOUCH_EVERY_S = 60.0
FLUSH_EVERY_S = 10.0


class SharedUsage:
    """The shared tier's uses and limit (``max_size`` bytes, None: none). ``start``, ``close``."""

    def __init__(self, rows: CachedFileRows, objects: ObjectStore, executor: Executor, max_size: int | None) -> None:
        self._rows = rows
        self._objects = objects
        self._executor = executor
        self.max_size = max_size
        self._pending: dict[str, float] = {}
        self._written: dict[str, float] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._evicting: asyncio.Lock | None = None

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def start(self) -> None:
        self._evicting = asyncio.Lock()
        self._flusher = asyncio.create_task(self._flush_periodically(), name="shared-usage-flush")
        await self.evict_if_over()  # the limit may have been lowered since the last run

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self.flush()

    def used(self, key: str, at: float | None = None) -> None:
        """A use of the row ``key`` (memory only; written with the next batch)."""
        now = time.time() if at is None else at
        if now - self._written.get(key, 0.0) >= TOUCH_EVERY_S:
            self._pending[key] = max(now, self._pending.get(key, 0.0))

    def local_uses(self, uses: Iterable[tuple[tuple[str, str], float]]) -> None:
        """Uses of the local tier's files, ((project, filename), POSIX seconds), as its ledger
        writes them: a file served from every replica's disk stays recent in the cluster too."""
        for (project, filename), at in uses:
            self.used(row_key(project, filename), at)

    async def flush(self) -> None:
        """Write the batched uses in one transaction (lost, logged, when the database is down)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:
            await self._run(self._rows.touch, sorted(batch.items()))
        except DatabaseUnavailable as exc:
            log.warning("shared_usage_flush_failed", files=len(batch), error=str(exc))
            return
        now = time.time()
        self._written.update(batch)
        self._written = {k: at for k, at in self._written.items() if now - at < TOUCH_EVERY_S}

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            await self.flush()

    async def evict_if_over(self) -> None:
        """Bring the shared tier within ``max_size``: rows, then their blobs no row lists.
        Failures are logged (the next publication tries again)."""
        if self.max_size is None or self._evicting is None or self._evicting.locked():
            return
        async with self._evicting:
            try:
                await self.flush()  # what this replica used lately counts as used
                gone = await self._run(self._rows.evict, self.max_size)
                if not gone:
                    return
                removed = await self._run(self._rows.drop_blobs, gone, self._remove)
            except (DatabaseUnavailable, ObjectStoreUnavailable) as exc:
                log.warning("shared_eviction_failed", error=str(exc))
                return
            log.info("shared_cache_evicted", files=len(gone), bytes=sum(r.size for r in gone), blobs=removed)

    def _remove(self, sha256: str) -> None:
        self._objects.remove(blob_key(sha256))
