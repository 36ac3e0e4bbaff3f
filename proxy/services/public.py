"""Upstream projects: pages fetched on demand, cached on disk, revalidated, served stale on error.

Freshness rules, per project:
- fresh (younger than ``fresh_for``, or ``not_found_for`` for a 404): served from cache;
- older: revalidated upstream with If-None-Match / If-Modified-Since (304 renews it);
- upstream fails (connection, timeout, 5xx, unreadable page): the cached page is served however
  old (stale-if-error), and upstream is not asked again for ``retry_after_error`` seconds;
- nothing cached and upstream fails: UpstreamUnavailable / UpstreamTimeout (502 / 504).
Concurrent misses of one project share one upstream request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import hashlib
import time
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Executor
from typing import Any, TypeVar

import structlog

from proxy import render
from proxy.config import UpstreamSettings
from proxy.errors import InvalidUpstreamResponse, ProjectNotFound, UpstreamError
from proxy.lru import LruCache
from proxy.negotiate import JSON_V1
from proxy.models import IndexFile, IndexPage
from proxy.pagecache import CachedPage, CachedProjectList, PageCache
from proxy.parse import parse_project_list, parse_project_page
from proxy.services.downloads import FileSpec
from proxy.services.index import Rendered, rendered
from proxy.upstream import MAX_PROJECT_LIST_BYTES, PageAnswer, Upstream
from proxy.urls import METADATA_SUFFIX, PROVENANCE_SUFFIX, with_path_suffix

T = TypeVar("T")
log = structlog.get_logger(__name__)
# Below these, parsing and rendering run on the loop: a thread hop would cost more.
_INLINE_BYTES = 64 * 1024
_INLINE_FILES = 200
_RECORD_BUDGET = 32 * 1024**2  # rough bytes of parsed pages kept in memory
_FILE_WEIGHT = 600  # rough bytes of one parsed IndexFile


class CacheState(enum.Enum):
    """How a cached answer was obtained. Value: the X-Proxy-Cache header's."""

    HIT = "hit"  # fresh in the cache, upstream not asked
    MISS = "miss"  # fetched from upstream now
    REVALIDATED = "revalidated"  # upstream said 304
    STALE = "stale"  # upstream failed; an older copy was served


class SingleFlight:
    """Concurrent calls with one key share one owned task; cancelling a caller never cancels it."""

    def __init__(self) -> None:
        self._tasks: dict[Hashable, asyncio.Task[Any]] = {}

    async def run(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._tasks[key] = task
            task.add_done_callback(lambda _: self._tasks.pop(key, None))
        result: T = await asyncio.shield(task)
        return result

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)


class PublicIndex:
    def __init__(self, upstream: Upstream, cache: PageCache, executor: Executor,
                 settings: UpstreamSettings, rendered_budget: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._upstream = upstream
        self._cache = cache
        self._executor = executor
        self._settings = settings
        self._clock = clock
        self._records: LruCache[str, CachedPage] = LruCache(
            _RECORD_BUDGET, lambda r: 1000 + _FILE_WEIGHT * (len(r.page.files) if r.page else 0)
        )
        self._rendered: LruCache[tuple[str, str, str], Rendered] = LruCache(
            rendered_budget, lambda r: r.weight + 200
        )
        self._retry_at: dict[Hashable, float] = {}
        self._flights = SingleFlight()
        self._writes: set[asyncio.Future[None]] = set()
        self._project_list: CachedProjectList | None = None

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def cached_page(self, name: str) -> IndexPage | None:
        """The listing of ``name`` as last cached, however old, without asking upstream."""
        record = self._records.get(name) or await self._run(self._cache.page, name)
        return record.page if record is not None and record.status == 200 else None

    async def cache_bytes(self) -> int:
        """Bytes the page cache takes on disk."""
        return await self._run(self._cache.volume)

    async def close(self) -> None:
        await self._flights.close()
        await asyncio.gather(*self._writes, return_exceptions=True)

    # Pages ------------------------------------------------------------------------------------

    async def page(self, name: str, content_type: str) -> tuple[Rendered, CacheState]:
        """The proxied page of upstream project ``name``, rendered once per content change."""
        record, state = await self.lookup(name)
        assert record.page is not None  # lookup raises for a 404
        key = (name, content_type, record.content_id)
        page = self._rendered.get(key)
        if page is None:
            small = len(record.page.files) <= _INLINE_FILES  # a thread hop would cost more
            page = _render(record, content_type) if small else await self._run(_render, record, content_type)
            self._rendered.put(key, page)
        return page, state

    async def lookup(self, name: str) -> tuple[CachedPage, CacheState]:
        """Upstream's page of ``name`` by the freshness rules; ProjectNotFound for its 404."""
        now = self._clock()
        cached = self._records.get(name)
        if cached is not None and self._is_fresh(cached, now):
            record, state = cached, CacheState.HIT
        elif cached is not None and now < self._retry_at.get(name, 0.0):
            record, state = cached, CacheState.STALE
        else:
            record, state = await self._flights.run(("page", name), lambda: self._refresh(name))
        if record.status != 200:
            raise ProjectNotFound(f"No project named {name!r} here or upstream.")
        return record, state

    def _is_fresh(self, record: CachedPage, now: float) -> bool:
        ttl = self._settings.fresh_for if record.status == 200 else self._settings.not_found_for
        return now - record.fetched_at < ttl

    async def _refresh(self, name: str) -> tuple[CachedPage, CacheState]:
        record = self._records.get(name) or await self._run(self._cache.page, name)
        now = self._clock()
        if record is not None and self._is_fresh(record, now):
            self._records.put(name, record)
            return record, CacheState.HIT
        try:
            fetched, state = await self._fetch(name, record)
        except UpstreamError as exc:
            if record is None:
                log.error("upstream_failed", project=name, error=str(exc))
                raise
            log.warning("upstream_stale_served", project=name, error=str(exc),
                        age_s=round(now - record.fetched_at, 1))
            self._retry_at[name] = now + self._settings.retry_after_error
            self._records.put(name, record)
            return record, CacheState.STALE
        self._retry_at.pop(name, None)
        self._records.put(name, fetched)
        self._store_later(name, fetched)
        return fetched, state

    def _store_later(self, name: str, record: CachedPage) -> None:
        """Persist a page without making the client wait; ``close`` waits for pending writes."""
        task = asyncio.ensure_future(self._run(self._cache.store_page, name, record))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        task.add_done_callback(_log_store_failure)

    async def _fetch(self, name: str, record: CachedPage | None) -> tuple[CachedPage, CacheState]:
        usable = record if record is not None and record.status == 200 else None
        answer = await self._upstream.fetch_page(
            self._upstream.project_url(name),
            usable.etag if usable else None, usable.last_modified if usable else None,
        )
        now = self._clock()
        if answer.status == 404:
            return CachedPage(404, now), CacheState.MISS
        if answer.status == 304:
            if usable is None:
                raise InvalidUpstreamResponse(f"upstream answered 304 to an unconditional request for {name!r}")
            return dataclasses.replace(
                usable, fetched_at=now, etag=answer.etag or usable.etag,
                last_modified=answer.last_modified or usable.last_modified,
            ), CacheState.REVALIDATED
        if len(answer.body) <= _INLINE_BYTES:  # parsing a small page is cheaper than a thread hop
            page = parse_project_page(answer.body, answer.content_type, answer.url, name)
        else:
            page = await self._run(parse_project_page, answer.body, answer.content_type, answer.url, name)
        content_id = hashlib.sha256(answer.body).hexdigest()[:24]
        return CachedPage(200, now, page, answer.etag, answer.last_modified, content_id), CacheState.MISS

    # Files ------------------------------------------------------------------------------------

    async def file_spec(self, name: str, filename: str) -> FileSpec:
        """What to fetch for ``filename``: only URLs from a listing we parsed (never an open proxy).

        Besides the listed files: ``<file>.metadata`` (PEP 658; upstream's, or for a wheel listed
        without one, extracted by this server: ``metadata_of``) and ``<file>.provenance`` (PEP 740).
        """
        record, _ = await self.lookup(name)
        assert record.page is not None
        if filename.endswith(METADATA_SUFFIX):
            listed = record.page.file(filename.removesuffix(METADATA_SUFFIX))
            if listed is not None and listed.core_metadata is not None:
                url = with_path_suffix(listed.url, METADATA_SUFFIX)  # on the path: the query stays (H3)
                return FileSpec(name, filename, url, dict(listed.core_metadata))
            if listed is not None and listed.filename.endswith(".whl"):
                return FileSpec(name, filename, listed.url, metadata_of=_listed_spec(name, listed))
        elif filename.endswith(PROVENANCE_SUFFIX):
            listed = record.page.file(filename.removesuffix(PROVENANCE_SUFFIX))
            if listed is not None and listed.provenance is not None:
                return FileSpec(name, filename, listed.provenance)
        elif (listed := record.page.file(filename)) is not None:
            return _listed_spec(name, listed)
        raise ProjectNotFound(f"No file {filename!r} in project {name!r}.")

    # The root list ----------------------------------------------------------------------------

    async def project_list(self) -> tuple[CachedProjectList | None, CacheState]:
        """Upstream's project names (long TTL, stale on error); None when never fetched."""
        record = self._project_list
        if record is not None and self._clock() - record.fetched_at < self._settings.project_list_fresh_for:
            return record, CacheState.HIT
        if record is not None and self._clock() < self._retry_at.get("projects", 0.0):
            return record, CacheState.STALE
        return await self._flights.run("projects", self._refresh_project_list)

    async def _refresh_project_list(self) -> tuple[CachedProjectList | None, CacheState]:
        record = self._project_list or await self._run(self._cache.project_list)
        now = self._clock()
        if record is not None and now - record.fetched_at < self._settings.project_list_fresh_for:
            self._project_list = record
            return record, CacheState.HIT
        try:
            answer = await self._upstream.fetch_page(
                self._upstream.base, record.etag if record else None,
                record.last_modified if record else None, max_bytes=MAX_PROJECT_LIST_BYTES, kind="list",
            )
            fetched, state = await self._project_list_from(answer, record, now)
        except UpstreamError as exc:
            log.warning("upstream_project_list_failed", error=str(exc), stale=record is not None)
            self._retry_at["projects"] = now + self._settings.retry_after_error
            self._project_list = record
            return record, CacheState.STALE
        self._project_list = fetched
        await self._run(self._cache.store_project_list, fetched)
        return fetched, state

    async def _project_list_from(self, answer: PageAnswer, record: CachedProjectList | None,
                                 now: float) -> tuple[CachedProjectList, CacheState]:
        if answer.status == 304 and record is not None:
            return dataclasses.replace(record, fetched_at=now), CacheState.REVALIDATED
        if answer.status != 200:
            raise InvalidUpstreamResponse(f"upstream answered {answer.status} for its project list")
        names = await self._run(parse_project_list, answer.body, answer.content_type)
        return CachedProjectList(now, tuple(names), answer.etag, answer.last_modified), CacheState.MISS


def _listed_spec(name: str, listed: IndexFile) -> FileSpec:
    return FileSpec(name, listed.filename, listed.url, dict(listed.hashes), listed.size,
                    derive_metadata=listed.core_metadata is None and listed.filename.endswith(".whl"))


def _log_store_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("page_cache_write_failed", error=str(task.exception()))


def _render(record: CachedPage, content_type: str) -> Rendered:
    """The page and its gzip copy. Blocking (a big page takes milliseconds): run in the executor."""
    assert record.page is not None
    model = render.proxied_index_page(record.page)
    body = render.project_json(model) if content_type == JSON_V1 else render.project_html(model)
    return rendered(body, content_type)
