"""Upstream files fetched once per file, verified, cached; every waiting client follows the download.

One task per (project, filename), across every server process of a data directory: the process
that takes the part file's lock streams the upstream body into it, hashing as it goes; the
others follow that part file (``proxy.upstream.follow``). Clients read the file as it grows
(``proxy.upstream.tee``), so the first byte reaches them before the download ends, and a
thousand clients on one cold file cost one upstream request. A corrupt download never looks
complete to any of them.

Every download is bounded: by the listed size, else by upstream's Content-Length, else by
``max_size`` (``[upstream] max_file_size``, or ``[cache] files_max_size`` when smaller).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from yarl import URL

from proxy.core.errors import IntegrityError, UpstreamError, UpstreamFileTooLarge
from proxy.storage.upstream_files import FileCache, Key, Part
from proxy.upstream import follow
from proxy.upstream.client import Upstream
from proxy.upstream.responses import masked
from proxy.upstream.tee import CHUNK, Download, FileStream

if TYPE_CHECKING:
    from proxy.upstream.shared_files import Claim, SharedFiles

T = TypeVar("T")
log = structlog.get_logger(__name__)
# Strongest first; the listing's best one is checked (PEP 503 allows any hashlib algorithm).
_ALGORITHMS = ("sha256", "sha512", "sha384", "blake2b", "sha3_256", "sha224", "sha1", "md5")
_ATTEMPTS = 12  # to take or follow a download, while other processes pass between their steps

__all__ = ["CHUNK", "Download", "Downloader", "FileSpec", "FileStream", "expected_digest"]


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


class Downloader:
    """Single-flight downloads into the file cache. Tasks are owned: ``close`` awaits them all."""

    def __init__(self, upstream: Upstream, cache: FileCache, executor: Executor,
                 committed: Callable[[FileSpec, Path], Awaitable[None]] | None = None,
                 max_size: int = 20 * 1024**3, shared: SharedFiles | None = None) -> None:
        self._upstream = upstream
        self._shared = shared  # the shared mode's tier across replicas (proxy.upstream.shared_files)
        self._cache = cache
        self._executor = executor
        self._committed = committed  # called after each verified file is in the cache
        self.max_size = max_size  # bytes, for a file whose size neither listing nor upstream gives
        self._inflight: dict[Key, Download] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.upstream_requests = 0

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    def stream(self, spec: FileSpec) -> FileStream:
        """A client's stream of ``spec``: of the download in flight in this process, or of a new
        one (which follows another server process's download of the same file when there is one)."""
        return FileStream(self._download(spec), self._cache, self._executor)

    async def fetch(self, spec: FileSpec) -> Download:
        """The download of ``spec`` (await its ``result`` for the cached file)."""
        return self._download(spec)

    def _download(self, spec: FileSpec) -> Download:
        key = (spec.project, spec.filename)
        existing = self._inflight.get(key)
        if existing is not None:
            return existing
        download = Download(spec.project, spec.filename, spec.size)
        self._inflight[key] = download
        task = asyncio.create_task(self._take_or_follow(download, spec), name=f"download {spec.filename}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return download

    async def close(self) -> None:
        """Abandon downloads in flight (their temp files are removed) and wait for them to end."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _take_or_follow(self, download: Download, spec: FileSpec) -> None:
        """Serve the cached copy, else download the file, else follow the process that does."""
        key = (spec.project, spec.filename)
        try:
            for attempt in range(_ATTEMPTS):
                if await self._from_cache(download):
                    return
                part = await self._run(self._cache.claim, *key)
                if part is not None:
                    if self._cache.cached_size(*key) is None:
                        await self._write(download, spec, part)
                        return
                    await self._run(self._cache.discard, part, *key)  # committed meanwhile
                    os.close(part.read_fd)
                    continue
                fd = await self._run(self._cache.open_part, *key)
                if fd is not None:
                    await follow.follow(download, fd, self._cache, self._run)
                    return
                # Another process between creating its part file and locking it, or just done.
                await asyncio.sleep(min(follow.FIRST_POLL_S * 2**attempt, follow.MAX_POLL_S))
            raise UpstreamError(f"{spec.filename}: could neither download nor follow the download")
        except BaseException as exc:
            download.fail(exc)
            if not isinstance(exc, Exception):
                raise  # cancellation (shutdown)
            log.warning("download_follow_failed", filename=spec.filename, error=str(exc) or repr(exc))
        finally:
            self._inflight.pop(key, None)
            download.fd.release()  # the download's hold; readers keep theirs

    async def _from_cache(self, download: Download) -> bool:
        """Complete ``download`` from the cached file, when there is one (committed by another process)."""
        opened = await self._run(self._cache.open_cached, download.project, download.filename)
        if opened is None:
            return False
        download.fd.fd, size = opened
        download.wrote(size)
        download.succeed(self._cache.path(download.project, download.filename))
        return True

    async def _write(self, download: Download, spec: FileSpec, part: Part) -> None:
        """Download into ``part``; a failure is the download's (logged here), not raised.

        Once the bytes are verified, the file is admitted to the cache's accounting (room made
        for it) before readers may send its last byte and before it lands: a client holding the
        whole file finds the cache within its limit."""
        download.fd.fd = part.read_fd
        key = (spec.project, spec.filename)
        started = time.monotonic()
        claim: Claim | None = None
        try:
            try:
                claim = await self._fill(download, spec, part)
                await self._cache.usage.admit(key, download.written)
            except BaseException:
                await asyncio.shield(self._run(self._cache.discard, part, *key))
                raise
            download.verify()
            try:
                final, cancelled = await self._commit(part, spec)
            except BaseException:
                await asyncio.shield(self._cache.usage.forget(key))
                raise
        except BaseException as exc:
            if claim is not None and self._shared is not None:
                await asyncio.shield(self._shared.release(claim))
            download.fail(exc)
            self._failed(spec, exc)
            if not isinstance(exc, Exception):
                raise  # cancellation (shutdown)
            return
        if cancelled:  # shutdown, but the file is kept: its readers finish
            download.succeed(final)
            raise asyncio.CancelledError
        self._upstream.health.succeeded("file")
        if self._committed is not None:  # before the result: what derives from it is ready with it
            await self._committed(spec, final)
        download.succeed(final)
        if claim is not None and self._shared is not None:
            self._shared.publish(claim, spec, final)
        log.info("upstream_download", project=spec.project, filename=spec.filename,
                 bytes=download.written, ms=round((time.monotonic() - started) * 1000, 1))

    async def _commit(self, part: Part, spec: FileSpec) -> tuple[Path, bool]:
        """Rename the verified file into the cache; (its path, whether we were cancelled
        meanwhile). It is kept even then (shutdown): clients may already have every byte, and a
        half-done rename must not race a discard."""
        commit = asyncio.ensure_future(self._run(self._cache.commit, part, spec.project, spec.filename))
        try:
            return await asyncio.shield(commit), False
        except asyncio.CancelledError:
            return await commit, True

    def _failed(self, spec: FileSpec, exc: BaseException) -> None:
        if isinstance(exc, UpstreamError) and not isinstance(exc, UpstreamFileTooLarge):
            self._upstream.health.failed("file", exc)
        elif isinstance(exc, OSError):  # our disk (full, read-only, failing): not upstream's fault
            self._upstream.health.storage_failed("file", exc)
        if not isinstance(exc, Exception):
            return  # cancelled: shutdown
        log_event = log.error if isinstance(exc, (IntegrityError, OSError)) else log.warning
        log_event("download_storage_failed" if isinstance(exc, OSError) else "upstream_download_failed",
                  project=spec.project, filename=spec.filename,
                  url=masked(URL(spec.url, encoded=True)), error=str(exc) or type(exc).__name__)

    async def _fill(self, download: Download, spec: FileSpec, part: Part) -> Claim | None:
        """The file into ``part``: upstream's body, or in the shared mode what the shared tier picks."""
        if self._shared is None:
            await self._stream(download, spec, part)
            return None
        return await self._shared.fill(download, spec, part, self._stream)

    async def _stream(self, download: Download, spec: FileSpec, part: Part) -> None:
        """Upstream's body into the part file, bounded and checked against the listing."""
        digest = expected_digest(spec.hashes)
        hasher = hashlib.new(digest[0]) if digest else None
        if spec.size is not None and spec.size > self.max_size:
            raise self._too_large(spec, f"is listed with {spec.size} bytes")
        self.upstream_requests += 1
        async with self._upstream.open_file(spec.url) as response:
            length = response.content_length
            if length is not None and spec.size is not None and length != spec.size:
                raise IntegrityError(f"{spec.filename}: upstream sends {length} bytes, listed {spec.size}")
            if length is not None and length > self.max_size:
                raise self._too_large(spec, f"is {length} bytes long")
            download.expected_size = spec.size if spec.size is not None else length
            bound = download.expected_size if download.expected_size is not None else self.max_size
            async for chunk in response.content.iter_chunked(CHUNK):
                if download.written + len(chunk) > bound:
                    if download.expected_size is not None:
                        raise IntegrityError(f"{spec.filename}: upstream sent more than {bound} bytes")
                    raise self._too_large(spec, f"sent more than {bound} bytes")
                await self._run(_write, part, hasher, chunk)
                download.wrote(download.written + len(chunk))
        if download.expected_size is not None and download.written != download.expected_size:
            raise IntegrityError(
                f"{spec.filename}: upstream sent {download.written} of {download.expected_size} bytes"
            )
        if digest and hasher and hasher.hexdigest() != digest[1]:
            raise IntegrityError(f"{spec.filename}: {digest[0]} does not match the listing")
        if not digest:
            log.warning("upstream_file_unverified", project=spec.project, filename=spec.filename)

    def _too_large(self, spec: FileSpec, what: str) -> UpstreamFileTooLarge:
        return UpstreamFileTooLarge(
            f"{spec.filename} {what}: more than the {self.max_size} bytes this server takes for one file "
            "([upstream] max_file_size, or [cache] files_max_size when smaller)")


def _write(part: Part, hasher: Any, chunk: bytes) -> None:
    part.write(chunk)
    if hasher is not None:
        hasher.update(chunk)
