"""The cold-file tee: clients read a download as it is written, and never see the end of
unverified bytes.

A ``Download`` is one file being fetched, by this process (``proxy.upstream.downloads``) or by
another one that this process follows (``proxy.upstream.follow``). Either way its bytes are in
one inode, open here as a ``SharedFd``: readers ``pread`` it, so what they read is what was
written there, whatever happens to the path (a retry may create a new part file under the same
name, an eviction may unlink the cached file). ``written`` counts bytes in that file.

A ``FileStream`` is one client's view: it yields what it may send, holding back the last byte
of a file with a known size until the file is verified (so a corrupt file is never complete),
and the end of one without a size (the caller ends its response only after ``read`` returned
``b""``). Its response starts once ``START_BYTES`` are in the file, or the file is verified:
what a client gets is decided by the file, never by which task runs first. A failure before
that (any failure of a file no longer than ``START_BYTES``) is a clean error status; after it,
the response is under way and breaks off. Readers never poll: one that has caught up sleeps on
an event the writer sets, so CPU goes with bytes, not with time; and as writes are unbuffered,
a read always finds the bytes counted (an empty one means the file was tampered with: an
error, never "try again now").
"""

from __future__ import annotations

import asyncio
import errno
import os
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import structlog

from proxy.core.errors import IntegrityError, ProxyError, StorageFull, UpstreamError
from proxy.storage.upstream_files import FileCache

log = structlog.get_logger(__name__)
CHUNK = 256 * 1024  # read from upstream at a time
# Read from the file at a time for each client: every client holds one such read while it sends
# it, so this bounds their memory. Issue 16: 50 clients on one cold 100 MB file took the tree from
# 137 to 148 MiB with 256 KiB reads, in no less time.
READ_CHUNK = 64 * 1024
# Bytes in the file before responses start. A smaller file (most core metadata files, many
# wheels) is verified before anyone sends a byte, so when it is damaged its clients get a clean
# 502 naming the problem, not a broken body. The cost: the first byte waits for these (2 s at
# 32 KiB/s; at download_min_rate's floor of 1 KiB/s a minute, past pip's 15 s read timeout).
START_BYTES = 64 * 1024


class SharedFd:
    """A read-only descriptor that several readers ``pread``: closed once its holders released it
    and no read is running (a cancelled reader's read may still run in a thread)."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self._holders = 1  # whoever made it

    def hold(self) -> None:
        self._holders += 1

    def release(self) -> None:
        self._holders -= 1
        if self._holders == 0 and self.fd is not None:
            os.close(self.fd)
            self.fd = None

    async def pread(self, executor: Executor, size: int, offset: int) -> bytes:
        assert self.fd is not None and self._holders > 0
        loop = asyncio.get_running_loop()
        self.hold()  # until the read is over, also when its awaiter is cancelled meanwhile
        future = executor.submit(os.pread, self.fd, size, offset)
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self.release))
        return await asyncio.wrap_future(future)


class Download:
    """One file being fetched: written into ``fd`` (``written`` bytes so far), verified, committed.

    ``started`` resolves once ``START_BYTES`` are in the file or it is verified: a failure before
    that reaches clients as a clean error. ``result`` resolves with the committed file.
    """

    def __init__(self, project: str, filename: str, expected_size: int | None) -> None:
        self.project = project
        self.filename = filename
        self.expected_size = expected_size
        self.fd = SharedFd()
        self.written = 0
        self.verified = False  # hash and size checked: the last byte may go out
        loop = asyncio.get_running_loop()
        self.started: asyncio.Future[None] = loop.create_future()
        self.result: asyncio.Future[Path] = loop.create_future()
        self._progress = asyncio.Event()
        for future in (self.started, self.result):
            future.add_done_callback(_consume_exception)

    # The writer's side --------------------------------------------------------------------

    def wrote(self, size: int) -> None:
        """``size`` bytes are in the file now."""
        self.written = size
        if size >= START_BYTES and not self.started.done():
            self.started.set_result(None)
        self._wake()

    def verify(self) -> None:
        """Every byte matches the listing: readers may send all of them."""
        self.verified = True
        if not self.started.done():
            self.started.set_result(None)
        self._wake()

    def succeed(self, path: Path) -> None:
        self.verify()
        if not self.result.done():
            self.result.set_result(path)
        self._wake()

    def fail(self, exc: BaseException) -> None:
        failure = as_domain_error(exc)
        for future in (self.started, self.result):
            if not future.done():
                future.set_exception(failure)
        self._wake()

    def _wake(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    # The readers' side --------------------------------------------------------------------

    def sendable(self) -> int:
        """Bytes a reader may send now: all but the last until the whole file is verified."""
        if self.verified:
            return self.written
        if self.expected_size is not None:  # when chunked, the withheld part is the final chunk
            return min(self.written, self.expected_size - 1)
        return self.written

    async def wait_beyond(self, position: int) -> None:
        """Return once more than ``position`` bytes may be sent, or the download has ended."""
        while self.sendable() <= position and not self.result.done():
            await self._progress.wait()


class FileStream:
    """One client's reading of a download: ``read`` until ``b""`` (complete and verified); a
    failed download raises a ProxyError from ``start`` (before any byte) or ``read``."""

    def __init__(self, download: Download, cache: FileCache, executor: Executor) -> None:
        self._download = download
        self._cache = cache
        self._executor = executor
        self._fd = download.fd
        self._fd.hold()  # taken when handed out, so the download cannot close it first
        self._own: SharedFd | None = None  # the committed file, when the download was lost
        self._own_size = 0
        self._position = 0
        self._closed = False

    @property
    def size(self) -> int | None:
        """The length the response may announce: the listed one, or upstream's Content-Length."""
        return self._own_size if self._own is not None else self._download.expected_size

    @property
    def filename(self) -> str:
        return self._download.filename

    async def start(self) -> None:
        """Wait until the response may start (``Download.started``); a download failing before
        raises (unless a verified copy is in the cache by then: it is read instead)."""
        try:
            await asyncio.shield(self._download.started)
        except ProxyError:
            if not await self._switch_to_cached():
                raise

    async def complete(self) -> Path:
        """Wait for the whole file, verified and in the cache."""
        if self._own is not None:
            return self._cache.path(self._download.project, self._download.filename)
        return await asyncio.shield(self._download.result)

    async def read(self) -> bytes:
        """The next bytes that may be sent; ``b""`` once the verified file was read to its end."""
        download = self._download
        while True:
            if self._own is not None:
                return await self._read_own()
            failure = download.result.exception() if download.result.done() else None
            if failure is not None:
                if self._position or not await self._switch_to_cached():
                    raise failure
                continue
            limit = download.sendable()
            if self._position < limit:
                chunk = await self._fd.pread(self._executor, min(READ_CHUNK, limit - self._position), self._position)
                if not chunk:  # fewer bytes than were written: never retried on the spot
                    raise IntegrityError(f"{download.filename}: the downloaded file shrank while being read")
                self._position += len(chunk)
                return chunk
            if download.result.done():
                return b""
            await download.wait_beyond(self._position)

    async def _switch_to_cached(self) -> bool:
        """The download failed before this reader sent anything: a verified copy another process
        committed meanwhile will do. Whether there is one."""
        opened = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._cache.open_cached, self._download.project, self._download.filename)
        if opened is None:
            return False
        self._own = SharedFd()
        self._own.fd, self._own_size = opened
        expected = self._download.expected_size
        if expected is not None and self._own_size != expected:
            raise IntegrityError(f"{self.filename}: the cached file has {self._own_size} bytes, listed {expected}")
        log.info("download_switched_to_cached", filename=self.filename)
        return True

    async def _read_own(self) -> bytes:
        assert self._own is not None
        if self._position >= self._own_size:
            return b""
        chunk = await self._own.pread(self._executor, min(READ_CHUNK, self._own_size - self._position),
                                      self._position)
        if not chunk:
            raise IntegrityError(f"{self.filename}: the cached file shrank while being read")
        self._position += len(chunk)
        return chunk

    def close(self) -> None:
        """Done reading (also after a failure): descriptors close once no read runs."""
        if self._closed:
            return
        self._closed = True
        self._fd.release()
        if self._own is not None:
            self._own.release()


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: a download nobody waits for must not log "never retrieved"


def as_domain_error(exc: BaseException) -> ProxyError:
    """What a reader is told when a download fails."""
    if isinstance(exc, ProxyError):
        return exc
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull("The disk is full; the file could not be cached.")
    return UpstreamError(f"download abandoned: {exc!r}")
