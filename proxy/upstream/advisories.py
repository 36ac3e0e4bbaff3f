"""The advisory feed (issue 15): OSV records from a configurable source, refreshed on a schedule
into an AdvisoryStore, and the loaded AdvisoryIndex every worker reads.

Sources: an http(s) URL of a zip of OSV JSON records (the default is OSV's bulk export for
PyPI), a local ``.zip``, or a local directory of OSV ``*.json`` files. PyPA's advisory-database
keeps its records as YAML: convert them (``yq -o json``) or point at OSV's export, which holds
them as JSON (parsing YAML here would add a dependency for data OSV already republishes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import structlog
from yarl import URL

from proxy import __version__
from proxy.core.errors import InvalidUpstreamResponse, ProxyError, UpstreamTimeout, UpstreamUnavailable
from proxy.core.health import FeedStatus
from proxy.core.osv import AdvisoryIndex
from proxy.storage.advisories import (
    AdvisoryStore,
    InvalidAdvisoryData,
    Stamp,
    StoredMeta,
    abandon_download,
    finish_download,
    source_fingerprint,
)
from proxy.upstream.responses import masked

log = structlog.get_logger(__name__)
T = TypeVar("T")
DEFAULT_SOURCE = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"
_WRITE_BATCH = 1024 * 1024  # bytes gathered before one write in the executor
_TICK_S = 60.0  # the loop wakes at least this often to pick up a copy another worker stored


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int  # 200 (body in temp) or 304
    etag: str | None = None
    last_modified: str | None = None
    temp: Path | None = None
    source_stamp: str | None = None  # a local source's fingerprint (``source_fingerprint``)


class AdvisoryFeed:
    """Keeps ``store`` fresh from ``source`` and serves its data as an AdvisoryIndex.

    ``refresh_every`` and ``retry_every`` are seconds (a failed refresh is retried after
    ``retry_every``, at most ``refresh_every``); ``deadline`` bounds a whole download (seconds),
    ``connect_timeout``/``read_timeout`` each connect and each read; ``clock`` gives unix seconds.
    ``session``: a client session to use (not closed here); without one the feed opens its own
    at ``start`` (trust_env: HTTPS_PROXY/NO_PROXY apply, as for the upstream index). Blocking
    work (disk, zip, JSON) runs in ``executor``.
    """

    def __init__(self, source: str, store: AdvisoryStore, executor: Executor, refresh_every: float = 3600.0, *,
                 clock: Callable[[], float] = time.time, session: aiohttp.ClientSession | None = None,
                 retry_every: float = 300.0, connect_timeout: float = 10.0, read_timeout: float = 60.0,
                 deadline: float = 900.0) -> None:
        self.source = source
        self._url = URL(source) if source.startswith(("http://", "https://")) else None
        self._label = masked(self._url) if self._url is not None else source
        self._store = store
        self._executor = executor
        self._refresh_every = refresh_every
        self._retry_every = min(retry_every, refresh_every)
        self._clock = clock
        self._session = session
        self._own_session = session is None
        self._timeouts = (connect_timeout, read_timeout, deadline)
        self._index: AdvisoryIndex | None = None
        self._meta: StoredMeta | None = None
        self._seen: Stamp | None = None
        self._last_error: str | None = None
        self._loading: asyncio.Future[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the background loop: load the stored copy, then refresh whenever one is due."""
        self._loop_task = asyncio.create_task(self._run_loop(), name="advisory-feed")

    def _client(self) -> aiohttp.ClientSession:
        """The session given, or this feed's own, opened on first use (closed by ``close``)."""
        if self._session is None:
            connect, read, _ = self._timeouts
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read),
                trust_env=True, headers={"User-Agent": f"pypi-proxy/{__version__}"})
        return self._session

    async def close(self) -> None:
        """Cancel the loop and any load in progress, then close the session this feed opened."""
        for task in (self._loop_task, self._loading):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._loop_task = self._loading = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def status(self) -> FeedStatus:
        """The state of the data, from memory (cheap: for every health check and scrape)."""
        meta = self._meta
        fetched_at = meta.fetched_at if meta else None
        return FeedStatus(
            self._label, fetched_at, None if fetched_at is None else max(0.0, self._clock() - fetched_at),
            meta.records if meta else 0, self._last_error, self._index.version if self._index else None)

    async def current(self) -> AdvisoryIndex | None:
        """The loaded index (None until a copy is stored), reloaded in the executor when the
        stored copy changed; concurrent callers share one load. A copy that fails to load
        leaves the previous index in place and sets ``last_error``."""
        stamp = self._store.stamp()
        if stamp != self._seen:
            if self._loading is None:
                self._loading = asyncio.ensure_future(self._reload(stamp))
            await asyncio.shield(self._loading)
        return self._index

    async def refresh(self, *, only_if_due: bool = False) -> str:
        """Ask the source once: ``"stored"`` (a new copy), ``"unchanged"`` (304, or a local source
        as it was), ``"failed"`` (old copy kept, ``last_error`` set), ``"busy"`` (another worker
        holds the download lock: its copy is picked up by ``current``), or ``"fresh"`` (with
        ``only_if_due``: the stored copy is younger than refresh_every)."""
        lock = self._store.download_lock()
        if not await self._run(lock.acquire):
            return "busy"
        try:
            await self._run(self._store.sweep)
            meta = await self._run(self._store.meta)
            mine = meta if meta is not None and meta.source == self._label else None
            if only_if_due and not self._due(mine):
                return "fresh"
            return await self._refresh_locked(mine)
        finally:
            await self._run(lock.release)

    def _due(self, meta: StoredMeta | None) -> bool:
        if meta is None:
            return True
        now = self._clock()
        if meta.last_error and meta.checked_at is not None:
            return now >= meta.checked_at + self._retry_every
        return now >= meta.fetched_at + self._refresh_every

    async def _refresh_locked(self, mine: StoredMeta | None) -> str:
        now = self._clock()
        try:
            if self._url is not None:
                answer = await self._download(mine)
            else:
                answer = await self._read_local(mine)
            if answer.temp is None:
                self._adopt_meta(await self._run(self._renewed, answer, now))
                log.info("advisory_data_unchanged", source=self._label)
                return "unchanged"
            new = StoredMeta(self._label, "", now, 0, etag=answer.etag, last_modified=answer.last_modified,
                             source_stamp=answer.source_stamp, checked_at=now)
            stored, index = await self._run(self._store.commit, answer.temp, new)
        except (ProxyError, OSError) as exc:
            await self._failed(exc, now)
            return "failed"
        self._index, self._seen = index, self._store.stamp()
        self._adopt_meta(stored)
        return "stored"

    def _renewed(self, answer: _Answer, now: float) -> StoredMeta | None:
        """The stored meta after a 304: fetched now; validators a 304 sends replace the old ones."""
        changes: dict[str, Any] = {"fetched_at": now, "checked_at": now, "last_error": None}
        changes.update({key: value for key, value in (("etag", answer.etag), ("last_modified", answer.last_modified))
                        if value})
        return self._store.renew(**changes)

    async def _failed(self, exc: BaseException, now: float) -> None:
        self._last_error = f"{type(exc).__name__}: {exc}"
        log.warning("advisory_refresh_failed", source=self._label, error=self._last_error)
        try:
            await self._run(lambda: self._store.renew(checked_at=now, last_error=self._last_error))
        except OSError as error:  # a full disk: the error stays in memory only
            log.warning("advisory_meta_not_written", error=str(error))

    def _adopt_meta(self, meta: StoredMeta | None) -> None:
        self._meta = meta
        self._last_error = meta.last_error if meta else self._last_error
        if meta is not None and self._index is not None and self._index.version == meta.version:
            self._index.fetched_at = meta.fetched_at  # a 304 renews the data's age, not the data

    async def _reload(self, stamp: Stamp | None) -> None:
        try:
            meta = await self._run(self._store.meta)
            if meta is not None and (self._index is None or self._index.version != meta.version):
                self._index = await self._run(self._store.load)
                log.info("advisory_data_loaded", source=self._label, records=meta.records, version=meta.version)
            self._adopt_meta(meta)
        except (InvalidAdvisoryData, OSError) as exc:
            self._last_error = f"{type(exc).__name__}: {exc}"
            log.warning("advisory_load_failed", error=self._last_error)
        finally:
            self._seen = stamp  # a copy that fails to load is not retried until it changes
            self._loading = None

    async def _read_local(self, mine: StoredMeta | None) -> _Answer:
        path = Path(self.source)
        fingerprint = await self._run(source_fingerprint, path)
        if mine is not None and mine.source_stamp == fingerprint:
            return _Answer(304)
        return _Answer(200, temp=await self._run(self._store.import_local, path), source_stamp=fingerprint)

    async def _download(self, mine: StoredMeta | None) -> _Answer:
        """One conditional GET, bounded by ``deadline``; the body streamed to a temp file."""
        assert self._url is not None
        headers = {}
        if mine is not None and mine.etag:
            headers["If-None-Match"] = mine.etag
        if mine is not None and mine.last_modified:
            headers["If-Modified-Since"] = mine.last_modified
        deadline = self._timeouts[2]
        try:
            return await asyncio.wait_for(self._get(self._url, headers), deadline)
        except asyncio.TimeoutError:
            raise UpstreamTimeout(f"{self._label}: no complete answer within {deadline:g} s") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"{self._label}: {exc}") from None

    async def _get(self, url: URL, headers: dict[str, str]) -> _Answer:
        async with self._client().get(url, headers=headers) as response:
            validators = response.headers.get("ETag"), response.headers.get("Last-Modified")
            if response.status == 304:
                return _Answer(304, *validators)
            if response.status != 200:
                kind = UpstreamUnavailable if response.status >= 500 else InvalidUpstreamResponse
                raise kind(f"{self._label} answered {response.status}")
            limit = self._store.limits.max_download_bytes
            if (response.content_length or 0) > limit:
                raise InvalidAdvisoryData(f"{self._label} is larger than max_download_bytes ({limit})",
                                          "max_download_bytes")
            return _Answer(200, *validators, temp=await self._save(response, limit))

    async def _save(self, response: aiohttp.ClientResponse, limit: int) -> Path:
        temp, handle = await self._run(self._store.open_temp)
        try:
            received, batch = 0, bytearray()
            async for chunk in response.content.iter_chunked(256 * 1024):
                received += len(chunk)
                if received > limit:
                    raise InvalidAdvisoryData(f"{self._label} sent more than max_download_bytes ({limit})",
                                              "max_download_bytes")
                batch += chunk
                if len(batch) >= _WRITE_BATCH:
                    await self._run(handle.write, bytes(batch))
                    batch.clear()
            await self._run(finish_download, handle, bytes(batch))
        except BaseException:
            await asyncio.shield(self._run(abandon_download, handle, temp))
            raise
        log.info("advisory_download", source=self._label, bytes=received)
        return temp

    async def _run_loop(self) -> None:
        while True:
            try:
                await self.current()  # the stored copy, usable before (and without) the source
                await self.refresh(only_if_due=True)
                await self.current()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop outlives any one failure: next tick tries again
                log.exception("advisory_feed_loop_failed")
            await asyncio.sleep(min(self._refresh_every, self._retry_every, _TICK_S))

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)
