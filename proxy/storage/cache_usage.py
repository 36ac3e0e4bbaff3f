"""What the file cache holds and how recently each file was used, shared by every server process.

The figures live in the ledger (``proxy.storage.ledger``, SQLite), reached through one thread of this
process's own, so the event loop never waits on the database. A file is admitted before it
lands in the cache: counted, and room made for it by evicting the least recently used files of
every process, so the files on disk never sum to more than the limit. What stays per process:

* pins: files this process is serving now; its evictions leave them alone;
* last uses, which are only batched up in memory: a file's use is written at most once per
  ``TOUCH_EVERY_S`` seconds, all of them in one transaction every ``FLUSH_EVERY_S`` seconds, so
  a cache hit costs no database write (a file being served long is touched again meanwhile).

Another process may evict a file this one is about to open: files used in the last
``RECENT_S`` seconds go only when older ones are not enough, and a reader that finds its file
gone fetches it again (an open file stays readable after an unlink, so only that moment counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from proxy.core.errors import DataDirUnusable
from proxy.storage.ledger import CachedEntry, Eviction, Key, Ledger, Totals

T = TypeVar("T")
log = structlog.get_logger(__name__)
TOUCH_EVERY_S = 10.0
FLUSH_EVERY_S = 1.0
RECENT_S = 2 * TOUCH_EVERY_S + FLUSH_EVERY_S


class CacheUsage:
    """The ledger of one data directory, for one server process; ``start`` before use, ``close`` after."""

    def __init__(self, path: Path, max_size: int | None = None,
                 remove: Callable[[list[Key]], int] | None = None) -> None:
        self.path = path
        self.max_size = max_size  # bytes, for the files of every process together; None: no limit
        self._remove = remove or _remove_nothing  # unlinks evicted files; returns the bytes freed
        self._pins: Counter[Key] = Counter()
        self._pending: dict[Key, float] = {}  # last uses not yet written
        self._written: dict[Key, float] = {}  # when each recently used file's use was written
        self._executor: ThreadPoolExecutor | None = None
        self._ledger: Ledger | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[list[tuple[Key, float]]], None]] = []

    def add_listener(self, listener: Callable[[list[tuple[Key, float]]], None]) -> None:
        """Also hand each batch of last uses written to ``listener`` (memory only: the shared
        mode's tier across replicas, ``proxy.storage.shared_usage``)."""
        self._listeners.append(listener)

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pypi-proxy-ledger")
        try:
            self._ledger = await self._call(Ledger, self.path)
        except sqlite3.Error as exc:
            await asyncio.to_thread(self._executor.shutdown)
            self._executor = None
            raise DataDirUnusable(str(self.path), f"the cache's ledger cannot be opened ({exc})",
                                  "remove it: it is rebuilt from the cached files") from None
        self._flusher = asyncio.create_task(self._flush_periodically(), name="cache usage flush")

    async def close(self) -> None:
        """Write the last uses and close the ledger (at shutdown)."""
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._ledger is not None:
            try:
                await self.flush()
            except sqlite3.Error as exc:
                log.warning("cache_usage_flush_failed", error=str(exc))
            await self._call(self._ledger.close)
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True)

    async def _call(self, func: Callable[..., T], *args: Any) -> T:
        assert self._executor is not None, "CacheUsage.start() first"
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    @property
    def ledger(self) -> Ledger:
        assert self._ledger is not None, "CacheUsage.start() first"
        return self._ledger

    # On the hot path: memory only ----------------------------------------------------------

    def used(self, key: Key, size: int) -> None:
        """A cache hit (``size`` is unused: the ledger knows it). No I/O: batched for later."""
        now = time.time()
        if now - self._written.get(key, 0.0) >= TOUCH_EVERY_S:
            self._pending[key] = now

    @contextlib.contextmanager
    def pinned(self, key: Key) -> Iterator[None]:
        """While held, this process never evicts ``key`` (it is being served), and keeps its
        last use fresh in the ledger so that other processes prefer other files."""
        self._pins[key] += 1
        try:
            yield
        finally:
            self._pins[key] -= 1
            if not self._pins[key]:
                del self._pins[key]

    # In the ledger's thread ----------------------------------------------------------------

    async def flush(self) -> None:
        """Write the batched last uses (and refresh those of files being served) in one transaction."""
        now = time.time()
        for key in self._pins:
            if now - self._written.get(key, 0.0) >= TOUCH_EVERY_S:
                self._pending[key] = now
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        await self._call(self.ledger.touch, list(batch.items()))
        for listener in self._listeners:
            listener(list(batch.items()))
        self._written.update(batch)
        self._written = {k: at for k, at in self._written.items() if now - at < TOUCH_EVERY_S}

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            try:
                await self.flush()
            except sqlite3.Error as exc:  # the uses are lost; the figures stay right
                log.warning("cache_usage_flush_failed", error=str(exc))

    async def admit(self, key: Key, size: int) -> None:
        """A file about to enter the cache: counted, and room made for it by evicting the least
        recently used files of every process beyond ``max_size``, before it lands, so the files
        on disk never sum to more than the limit. Sparing it and files this process is serving.
        A database error is logged, not raised: the file is cached all the same, and the next
        start-up's scan counts it."""
        now = time.time()
        try:
            await self.flush()  # what this process used lately counts as used
            eviction = await self._call(self._admit, key, size, now, frozenset(self._pins) | {key})
        except (sqlite3.Error, OSError) as exc:
            log.error("cache_usage_failed", filename=key[1], error=str(exc))
            return
        self._written[key] = now
        self._pending.pop(key, None)
        if eviction is not None and eviction.keys:
            log.info("cache_evicted", files=len(eviction.keys), bytes=eviction.freed, cache_bytes=eviction.remaining)

    def _admit(self, key: Key, size: int, now: float, spare: frozenset[Key]) -> Eviction | None:
        self.ledger.record(key, size, now)
        return self._evict(spare, now)

    def _evict(self, spare: frozenset[Key], now: float) -> Eviction | None:
        if self.max_size is None:
            return None
        return self.ledger.evict(self.max_size, spare, now - RECENT_S, self._remove)

    async def forget(self, key: Key) -> None:
        """A file admitted that did not land after all."""
        try:
            await self._call(self.ledger.forget, [key])
        except sqlite3.Error as exc:
            log.error("cache_usage_failed", filename=key[1], error=str(exc))

    async def evict(self) -> Eviction | None:
        """Bring the sum of every process's cached files to ``max_size`` or below (at start-up:
        it may have been lowered since the last run). None when there is no limit."""
        return await self._call(self._evict, frozenset(self._pins), time.time())

    async def reconcile(self, entries: Iterable[CachedEntry], entry_of: Callable[[Key], CachedEntry | None]) -> int:
        """Correct the ledger from a scan of the files (at start-up)."""
        return await self._call(self.ledger.reconcile, list(entries), entry_of)

    async def totals(self) -> Totals:
        """Files and bytes in the cache, counted by every process."""
        return await self._call(self.ledger.totals)

    async def keys(self) -> list[Key]:
        """Every cached file, least recently used first, whichever process cached it."""
        return await self._call(self.ledger.keys)


def _remove_nothing(keys: list[Key]) -> int:
    raise RuntimeError("CacheUsage has no way to remove files")
