"""Upstream files fetched once per key, verified, cached; every waiting client follows the download.

One task per (project, filename) streams the upstream body into a temp file, hashing as it goes.
Clients read that temp file as it grows, so the first byte reaches them before the download ends,
and a thousand clients on one cold file cost one upstream request. Each client is held back from
the last byte until the hash and size are verified: a corrupt download never looks complete.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import structlog
from yarl import URL

from proxy.errors import IntegrityError, ProxyError, StorageFull, UpstreamError
from proxy.filecache import FileCache, Key
from proxy.upstream import Upstream, masked

T = TypeVar("T")
log = structlog.get_logger(__name__)
CHUNK = 256 * 1024
_FOLLOW_POLL_S = 0.02  # how often a download written by another process is looked at
# Strongest first; the listing's best one is checked (PEP 503 allows any hashlib algorithm).
_ALGORITHMS = ("sha256", "sha512", "sha384", "blake2b", "sha3_256", "sha224", "sha1", "md5")


@dataclass(frozen=True, slots=True)
class FileSpec:
    """A file to fetch, exactly as a parsed upstream listing described it."""

    project: str
    filename: str
    url: str
    hashes: dict[str, str] = field(default_factory=dict)
    size: int | None = None
    # A wheel listed without PEP 658 metadata: once verified, its METADATA is extracted and kept
    # as ``<filename>.metadata`` beside it (this server offers it, as PyPI does).
    derive_metadata: bool = False
    # For such a ``.metadata`` file: the wheel it is extracted from.
    metadata_of: FileSpec | None = None


def expected_digest(hashes: dict[str, str]) -> tuple[str, str] | None:
    """The (algorithm, hex) to verify against: sha256 when listed (PyPI's), else the strongest other."""
    for name in _ALGORITHMS:
        if name in hashes:
            return name, hashes[name].lower()
    return None


class Download:
    """One download in progress: readers follow ``written`` and await ``result``."""

    def __init__(self, spec: FileSpec, temp_path: Path) -> None:
        self.spec = spec
        self.temp_path = temp_path
        self.written = 0
        self.expected_size: int | None = spec.size
        # Hash and size checked: readers may send the last byte while the file is being committed
        # (fsync and rename are durability, not correctness, and cost milliseconds).
        self.verified = False
        self.committed = False  # renamed into the cache
        loop = asyncio.get_running_loop()
        self.started: asyncio.Future[None] = loop.create_future()  # set when upstream answered 200
        self.result: asyncio.Future[Path] = loop.create_future()  # the committed file
        self._progress = asyncio.Event()
        for future in (self.started, self.result):
            future.add_done_callback(_consume_exception)

    def advanced(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    async def wait_sendable_beyond(self, position: int) -> None:
        """Return once more than ``position`` bytes may be sent, or the download has ended."""
        while self.sendable() <= position and not self.result.done():
            progress = self._progress
            await progress.wait()

    def sendable(self) -> int:
        """Bytes a reader may send now: all but the last until the whole file is verified."""
        if self.verified or (self.result.done() and not self.result.cancelled() and self.result.exception() is None):
            return self.written
        if self.expected_size is not None:  # when chunked, the withheld part is the final chunk
            return min(self.written, self.expected_size - 1)
        return self.written


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: a download nobody waits for must not log "never retrieved"


class Downloader:
    """Single-flight downloads into the file cache. Tasks are owned: ``close`` awaits them all."""

    def __init__(self, upstream: Upstream, cache: FileCache, executor: Executor,
                 committed: Callable[[FileSpec, Path], Awaitable[None]] | None = None) -> None:
        self._upstream = upstream
        self._cache = cache
        self._executor = executor
        self._committed = committed  # called after each verified file is in the cache
        self._inflight: dict[tuple[str, str], Download] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.upstream_requests = 0

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def fetch(self, spec: FileSpec) -> Download:
        """The download of ``spec``: the one in flight in this process, or a new one, which
        follows another server process's download of the same file when there is one."""
        key = (spec.project, spec.filename)
        existing = self._inflight.get(key)
        if existing is not None:
            return existing
        download = Download(spec, self._cache.part_path(*key))
        self._inflight[key] = download
        task = asyncio.create_task(self._fetch(download), name=f"download {spec.filename}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return download

    async def _fetch(self, download: Download) -> None:
        key = (download.spec.project, download.spec.filename)
        try:
            handle = await self._run(self._cache.claim, *key)
            if handle is None:
                await self._follow_other_process(download)
                return
            if self._cache.cached_size(*key) is not None:  # committed meanwhile
                await self._run(self._cache.discard, handle, *key)
                await self._follow_other_process(download)
                return
            await self._download(download, handle)
        except BaseException as exc:
            _fail(download, exc)
            if not isinstance(exc, Exception):
                raise  # cancellation (shutdown)
            log.error("upstream_download_failed", filename=download.spec.filename, error=str(exc) or repr(exc))
        finally:
            self._inflight.pop(key, None)

    async def _follow_other_process(self, download: Download) -> None:
        """Track a download another server process writes: its part file grows, and it is
        complete once renamed into the cache. Readers are held back as for our own downloads."""
        key = (download.spec.project, download.spec.filename)
        writer_seen_gone = False
        while True:
            size = self._cache.cached_size(*key)
            if size is not None:
                download.written = size
                if not download.started.done():
                    download.started.set_result(None)
                download.result.set_result(self._cache.path(*key))
                download.advanced()
                self._cache.usage.record(key, size)
                return
            written = await self._run(_size_or_none, download.temp_path)
            if written is not None:
                download.written = written
                if not download.started.done():
                    download.started.set_result(None)
                download.advanced()
            if await self._run(self._cache.writer_active, *key):
                writer_seen_gone = False
            elif writer_seen_gone:  # twice in a row: not just between its open and its lock
                _fail(download, UpstreamError(f"{download.spec.filename}: the download in another "
                                              "server process failed"))
                return
            else:
                writer_seen_gone = True
            await asyncio.sleep(_FOLLOW_POLL_S)

    async def close(self) -> None:
        """Abandon downloads in flight (their temp files are removed) and wait for them to end."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _download(self, download: Download, handle: BinaryIO) -> None:
        spec = download.spec
        started = time.monotonic()
        try:
            final = await self._stream(download, handle)
        except BaseException as exc:
            if not download.committed:
                await asyncio.shield(self._run(self._cache.discard, handle, spec.project, spec.filename))
            _fail(download, exc)
            if isinstance(exc, UpstreamError):
                self._upstream.health.failed("file", exc)
            elif isinstance(exc, OSError):  # our disk (full, read-only, failing): not upstream's fault
                self._upstream.health.storage_failed("file", exc)
            log_event = log.error if isinstance(exc, (IntegrityError, OSError)) else log.warning
            log_event("download_storage_failed" if isinstance(exc, OSError) else "upstream_download_failed",
                      project=spec.project, filename=spec.filename,
                      url=masked(URL(spec.url, encoded=True)), error=str(exc) or type(exc).__name__)
            if not isinstance(exc, Exception):
                raise  # cancellation (shutdown) goes on up
        else:
            self._upstream.health.succeeded("file")
            if self._committed is not None:  # before the result: what derives from it is ready with it
                await self._committed(spec, final)
            download.result.set_result(final)
            download.advanced()
            log.info("upstream_download", project=spec.project, filename=spec.filename,
                     bytes=download.written, ms=round((time.monotonic() - started) * 1000, 1))
            await self._account((spec.project, spec.filename), download.written)

    async def _account(self, key: Key, size: int) -> None:
        """Count the new file against the cache's limit; evict the least recently used beyond it."""
        usage = self._cache.usage
        usage.record(key, size)
        with usage.pinned(key):  # readers waiting on the result are about to open it
            victims = usage.evict(self._cache.max_size)
        if not victims:
            return
        try:
            freed = await self._run(self._cache.remove, victims)
        except OSError as exc:
            log.error("cache_eviction_failed", error=str(exc))
            return
        log.info("cache_evicted", files=len(victims), bytes=freed, cache_bytes=usage.total_bytes)

    async def _stream(self, download: Download, handle: BinaryIO) -> Path:
        spec = download.spec
        digest = expected_digest(spec.hashes)
        hasher = hashlib.new(digest[0]) if digest else None
        self.upstream_requests += 1
        async with self._upstream.open_file(spec.url) as response:
            length = response.content_length
            if length is not None and spec.size is not None and length != spec.size:
                raise IntegrityError(f"{spec.filename}: upstream sends {length} bytes, listed {spec.size}")
            download.expected_size = spec.size if spec.size is not None else length
            async for chunk in response.content.iter_chunked(CHUNK):
                await self._run(_write, handle, hasher, chunk)
                download.written += len(chunk)
                if download.expected_size is not None and download.written > download.expected_size:
                    raise IntegrityError(f"{spec.filename}: upstream sent more than {download.expected_size} bytes")
                if not download.started.done():  # clients start once bytes are on disk: a full
                    download.started.set_result(None)  # disk or a silent upstream is a clean error
                download.advanced()
        if not download.started.done():  # an empty body
            download.started.set_result(None)
        if download.expected_size is not None and download.written != download.expected_size:
            raise IntegrityError(
                f"{spec.filename}: upstream sent {download.written} of {download.expected_size} bytes"
            )
        if digest and hasher and hasher.hexdigest() != digest[1]:
            raise IntegrityError(f"{spec.filename}: {digest[0]} does not match the listing")
        if not digest:
            log.warning("upstream_file_unverified", project=spec.project, filename=spec.filename)
        download.verified = True
        download.advanced()
        # Once verified, the file is kept even if we are cancelled (shutdown) meanwhile: clients
        # may already have every byte, and a half-done rename must not race a discard.
        commit = asyncio.ensure_future(self._run(self._cache.commit, handle, spec.project, spec.filename))
        try:
            final = await asyncio.shield(commit)
        except asyncio.CancelledError:
            await commit
            download.committed = True
            raise
        download.committed = True
        return final


def _fail(download: Download, exc: BaseException) -> None:
    failure = _as_domain_error(exc)
    for future in (download.started, download.result):
        if not future.done():
            future.set_exception(failure)
    download.advanced()


def _size_or_none(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def _write(handle: BinaryIO, hasher: Any, chunk: bytes) -> None:
    handle.write(chunk)
    if hasher is not None:
        hasher.update(chunk)


def _as_domain_error(exc: BaseException) -> ProxyError:
    if isinstance(exc, ProxyError):
        return exc
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull("The disk is full; the file could not be cached.")
    return UpstreamError(f"download abandoned: {exc!r}")
