"""Upstream projects: pages fetched on demand, cached on disk, revalidated, served stale on error.

Freshness rules, per project:
- fresh (younger than ``fresh_for``, or ``not_found_for`` for a 404): served from cache;
- older: revalidated upstream with If-None-Match / If-Modified-Since (304 renews it). The client
  waits for that at most ``stale_timeout`` seconds, then gets the cached copy while the refresh
  goes on in the background (stale-while-revalidate) and updates the cache when it ends. It does
  not wait at all unless upstream is known to answer right now (its last index request here
  succeeded) and no other refresh is already late: a failing or hanging upstream costs an
  install at most one bound, once;
- upstream fails (connection, timeout, 5xx, unreadable page): the cached page is served however
  old (stale-if-error), and upstream is not asked again for ``retry_after_error`` seconds;
- nothing cached: the client waits for upstream, at most ``page_deadline`` seconds, and gets
  UpstreamUnavailable / UpstreamTimeout (502 / 504) when it fails.
Concurrent requests for one project share one upstream request; in the shared mode, across
replicas too (``turns``: a replica refreshes in the page's turn, after reading it again).

When the index fails ``breaker_threshold`` times in a row (any project), its circuit opens:
cached copies are served at once without asking, uncached projects fail at once
(UpstreamCircuitOpen), and a probe asks upstream every ``breaker_probe_every`` seconds until it
answers, which closes the circuit. Every task here is owned and ended by ``close``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Executor
from typing import Any, TypeVar

import structlog

from proxy.config import UpstreamSettings
from proxy.core.errors import ProjectNotFound, UpstreamError
from proxy.core.flights import SingleFlight, retrieved
from proxy.core.lru import LruCache
from proxy.core.merge import CacheState
from proxy.storage.upstream_pages import CachedPage, CachedProjectList, FetchTurns, PageStore, upstream_id
from proxy.upstream import filespecs
from proxy.upstream import page_answers as answers
from proxy.upstream.client import MAX_PROJECT_LIST_BYTES, Upstream
from proxy.upstream.downloads import FileSpec
from proxy.upstream.circuit import circuit_open, probe_until_closed
from proxy.upstream.turns import in_turn

T = TypeVar("T")
log = structlog.get_logger(__name__)
_RECORD_BUDGET = 32 * 1024**2  # bytes of parsed pages kept in memory (per server process)
_FILE_WEIGHT, _RECORD_WEIGHT = 1300, 1000  # bytes per parsed file (tracemalloc: 1,170-1,314), per record
_PROBE_DEFAULT = "pip"  # probed when no project page failed yet (a 404 is an answer too)


class PublicIndex:
    def __init__(self, upstream: Upstream, cache: PageStore, executor: Executor, settings: UpstreamSettings,
                 clock: Callable[[], float] = time.time, turns: FetchTurns | None = None) -> None:
        self._upstream = upstream
        self._health = upstream.health
        self._breaker = upstream.health.breaker
        self._cache = cache
        self._source = upstream_id(str(upstream.base))  # records of another upstream are misses (L8)
        self._executor = executor
        self._settings = settings
        self._clock = clock
        self._turns = turns  # the shared mode's: which replica fetches a page (proxy.upstream.turns)
        self._records: LruCache[str, CachedPage] = LruCache(
            _RECORD_BUDGET, lambda r: _RECORD_WEIGHT + _FILE_WEIGHT * (len(r.page.files) if r.page else 0)
        )
        self._retry_at: dict[Hashable, float] = {}
        self._flights = SingleFlight()
        self._overdue: set[Hashable] = set()  # refreshes running longer than their wait bound
        self._writes: set[asyncio.Future[None]] = set()
        self._project_list: CachedProjectList | None = None
        self._probe: asyncio.Task[None] | None = None
        self._probe_name = _PROBE_DEFAULT

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def cached_record(self, name: str) -> CachedPage | None:
        """The record of ``name`` as last cached, however old, without asking upstream."""
        record = self._records.get(name) or await self._run(self._cache.page, name, self._source)
        return record if record is not None and record.status == 200 else None

    async def cache_bytes(self) -> int:
        """Bytes the page cache takes on disk."""
        return await self._run(self._cache.volume)

    async def close(self) -> None:
        """Cancel refreshes and the probe (bounded work nobody needs once we stop); await writes."""
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
        await self._flights.close()
        await asyncio.gather(*self._writes, return_exceptions=True)

    # Pages ------------------------------------------------------------------------------------

    async def lookup(self, name: str) -> tuple[CachedPage, CacheState]:
        """Upstream's page of ``name`` by the freshness rules (module docstring).

        Raises ProjectNotFound for upstream's 404; without a cached copy, UpstreamCircuitOpen
        while the circuit is open, else what the fetch raised (UpstreamError).
        """
        cached = self._records.get(name)
        if cached is None:
            cached = await self._flights.run(("load", name), lambda: self._load(name))
        now = self._clock()
        if cached is None:
            self._check_circuit()
            record, state = await self._flights.run(("page", name), lambda: self._refresh(name, None))
        elif self._is_fresh(cached, now):
            record, state = cached, CacheState.HIT
        elif now < self._retry_at.get(name, 0.0) or not self._breaker.closed:
            record, state = cached, CacheState.STALE
        else:
            record, state = await self._within_bound(("page", name), lambda: self._refresh(name, cached), cached)
        if record.status != 200:
            raise ProjectNotFound(f"No project named {name!r} here or upstream.", project=name)
        return record, state

    async def _load(self, name: str) -> CachedPage | None:
        record = await self._run(self._cache.page, name, self._source)
        if record is not None:
            self._records.put(name, record)
        return record

    def _is_fresh(self, record: CachedPage, now: float) -> bool:
        ttl = self._settings.fresh_for if record.status == 200 else self._settings.not_found_for
        return now - record.fetched_at < ttl

    async def _within_bound(self, key: Hashable, work: Callable[[], Awaitable[tuple[T, CacheState]]],
                            cached: T, *, telling: bool = True) -> tuple[T, CacheState]:
        """Join or start the refresh ``key``; wait for it ``_stale_wait()`` seconds at most, then
        answer ``cached``, stale (the refresh goes on). A ``telling`` refresh that runs late
        tells that upstream is slow right now (not so a huge project list)."""
        bound = self._stale_wait()
        task = self._flights.start(key, (lambda: self._timed(key, work(), bound)) if telling else work)
        try:
            return await asyncio.wait_for(asyncio.shield(task), bound)
        except asyncio.TimeoutError:
            if bound:
                log.warning("upstream_slow_stale_served", page=key[-1] if isinstance(key, tuple) else key,
                            waited_s=bound)
            return cached, CacheState.STALE

    def _stale_wait(self) -> float:
        """``stale_timeout`` while upstream answers and no refresh is late (it is slow right
        now), else 0: nobody waits for an upstream that is not known to answer."""
        if self._overdue or not self._breaker.answering:
            return 0.0
        return self._settings.stale_timeout

    async def _timed(self, key: Hashable, work: Awaitable[T], bound: float) -> T:
        """Run ``work``, marked overdue while it runs past ``bound``."""
        handle = asyncio.get_running_loop().call_later(bound, self._overdue.add, key)
        try:
            return await work
        finally:
            handle.cancel()
            self._overdue.discard(key)

    async def _refresh(self, name: str, record: CachedPage | None) -> tuple[CachedPage, CacheState]:
        current = self._records.get(name) or record
        if current is not None and self._is_fresh(current, self._clock()):  # refreshed meanwhile
            return current, CacheState.HIT
        if self._turns is None:
            return await self._fetch_and_keep(name, record)
        found, state = await in_turn(
            self._turns, f"page:{name}", self._settings.page_deadline, record, lambda: self._load(name),
            lambda r: self._is_fresh(r, self._clock()), lambda r: self._fetch_and_keep(name, r))
        self._records.put(name, found)
        return found, state

    async def _fetch_and_keep(self, name: str, record: CachedPage | None) -> tuple[CachedPage, CacheState]:
        try:
            fetched, state = await self._fetch(name, record)
        except UpstreamError as exc:
            self._index_failed(name)
            if record is None:
                log.error("upstream_failed", project=name, error=str(exc))
                raise
            now = self._clock()
            log.warning("upstream_stale_served", project=name, error=str(exc),
                        age_s=round(now - record.fetched_at, 1))
            self._retry_at[name] = now + self._settings.retry_after_error
            return record, CacheState.STALE
        self._retry_at.pop(name, None)
        self._records.put(name, fetched)
        await self._keep(self._cache.store_page, name, fetched)
        return fetched, state

    async def _fetch(self, name: str, record: CachedPage | None) -> tuple[CachedPage, CacheState]:
        """One revalidation or fetch, counted as one index fetch (an unreadable page is a failure)."""
        usable = record if record is not None and record.status == 200 else None
        with self._health.attempt("page"):
            answer = await self._upstream.fetch_page(
                self._upstream.project_url(name),
                usable.etag if usable else None, usable.last_modified if usable else None,
                # With a copy to fall back on, one attempt: retry pauses would only delay it.
                retries=0 if record is not None else None, deadline=self._settings.page_deadline,
            )
            return await answers.page_record(answer, name, usable, self._clock(), self._source, self._run)

    async def _keep(self, store: Callable[..., None], *args: Any) -> None:
        """Persist without making the client wait; ``close`` waits for pending writes. A failure
        is local storage trouble (a full disk), reported as such: never upstream's. Taking
        turns, the write ends before the turn does: the next replica in line reads it."""
        task = asyncio.ensure_future(self._run(store, *args))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        task.add_done_callback(self._store_done)
        if self._turns is not None:
            await asyncio.wait([task])

    def _store_done(self, task: asyncio.Future[None]) -> None:
        if task.cancelled() or (error := task.exception()) is None:
            return
        log.error("page_cache_write_failed", error=str(error) or repr(error))
        self._health.storage_failed("page", error)

    # The circuit --------------------------------------------------------------------------------

    def _check_circuit(self) -> None:
        if not self._breaker.closed:
            raise circuit_open(self._upstream, self._settings.breaker_probe_every)

    def _index_failed(self, name: str | None) -> None:
        """After a failed index fetch: when the circuit is open, make sure a probe is running."""
        if name is not None:
            self._probe_name = name
        if not self._breaker.closed and (self._probe is None or self._probe.done()):
            self._probe = asyncio.ensure_future(
                probe_until_closed(self._upstream, self._settings, lambda: self._probe_name))
            self._probe.add_done_callback(retrieved)

    # Files ------------------------------------------------------------------------------------

    async def file_spec(self, name: str, filename: str) -> FileSpec:
        """What to fetch for ``filename`` of upstream project ``name`` (``filespecs.file_spec``):
        only URLs from a listing we parsed (never an open proxy); ProjectNotFound when it lists
        no such file, UpstreamRefused when it lists one that cannot be verified."""
        record, _ = await self.lookup(name)
        assert record.page is not None
        return filespecs.file_spec(record.page, filename, cache_unverified=self._settings.cache_unverified_files)

    # The root list ----------------------------------------------------------------------------

    async def project_list(self) -> tuple[CachedProjectList | None, CacheState]:
        """Upstream's project names (long TTL, stale on error, the same bounds as pages); None
        when never fetched, or when nothing is cached and the circuit is open."""
        record = self._project_list
        if record is None:
            record = self._project_list = await self._flights.run("projects-load", self._load_project_list)
        now = self._clock()
        if record is not None and now - record.fetched_at < self._settings.project_list_fresh_for:
            return record, CacheState.HIT
        if not self._breaker.closed or (record is not None and now < self._retry_at.get("projects", 0.0)):
            return record, CacheState.STALE
        if record is None:
            return await self._flights.run("projects", lambda: self._list_in_turn(None))
        return await self._within_bound("projects", lambda: self._list_in_turn(record), record, telling=False)

    async def _load_project_list(self) -> CachedProjectList | None:
        return self._project_list or await self._run(self._cache.project_list, self._source)

    async def _list_in_turn(self, record: CachedProjectList | None) -> tuple[CachedProjectList | None, CacheState]:
        if self._turns is None:
            return await self._refresh_project_list(record)
        found, state = await in_turn(
            self._turns, "projects", self._settings.project_list_deadline, record,
            lambda: self._run(self._cache.project_list, self._source),
            lambda r: self._clock() - r.fetched_at < self._settings.project_list_fresh_for, self._refresh_project_list)
        self._project_list = found or self._project_list
        return found, state

    async def _refresh_project_list(self, record: CachedProjectList | None) -> tuple[CachedProjectList | None, CacheState]:
        current = self._project_list or record
        now = self._clock()
        if current is not None and now - current.fetched_at < self._settings.project_list_fresh_for:
            return current, CacheState.HIT
        try:
            with self._health.attempt("list"):
                answer = await self._upstream.fetch_page(
                    self._upstream.base, record.etag if record else None,
                    record.last_modified if record else None, max_bytes=MAX_PROJECT_LIST_BYTES,
                    retries=0 if record is not None else None, deadline=self._settings.project_list_deadline,
                )
                fetched, state = await answers.project_list_record(answer, record, self._clock(), self._source, self._run)
        except UpstreamError as exc:
            self._index_failed(None)
            log.warning("upstream_project_list_failed", error=str(exc), stale=record is not None)
            self._retry_at["projects"] = self._clock() + self._settings.retry_after_error
            return record, CacheState.STALE
        self._project_list = fetched
        await self._keep(self._cache.store_project_list, fetched)
        return fetched, state


