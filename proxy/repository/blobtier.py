"""The local tier of private blobs in stream mode (issue 14), on the repository's side: a file
with a verified copy on this replica's disk is a ``Resource(path=...)`` (sent with sendfile);
a whole-object read from the store writes such a copy as the bytes go by
(``proxy.storage.localblobs``). A copy that cannot be written is logged, never a failed answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from proxy.core.errors import ObjectIntegrityError
from proxy.repository.base import ObjectReader
from proxy.storage.localblobs import Fill, LocalBlobs

T = TypeVar("T")
log = structlog.get_logger(__name__)


class BlobTier:
    """The local tier ``blobs``, its disk work on ``executor``."""

    def __init__(self, blobs: LocalBlobs, executor: Executor) -> None:
        self._blobs = blobs
        self._executor = executor

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def start(self) -> None:
        """Sweep what a crash left and what is over the bound (at start-up)."""
        await self._run(self._blobs.start)

    async def find(self, sha256: str, size: int) -> Path | None:
        """The local copy of the blob, or None (see ``LocalBlobs.find``)."""
        try:
            return await self._run(self._blobs.find, sha256, size)
        except OSError as exc:
            log.warning("local_blob_unreadable", sha256=sha256, error=str(exc))
            return None

    async def filling(self, reader: ObjectReader, sha256: str, size: int) -> ObjectReader:
        """``reader`` (the whole object) that also writes the local copy as it is read."""
        try:
            fill = await self._run(self._blobs.begin, sha256, size)
        except OSError as exc:
            log.warning("local_blob_not_kept", sha256=sha256, error=str(exc))
            return reader
        return _Filling(reader, fill, self._run)


class _Filling:
    """An ObjectReader whose bytes also go to ``fill``, committed at the end (verified)."""

    def __init__(self, reader: ObjectReader, fill: Fill, run: Callable[..., Any]) -> None:
        self._reader = reader
        self._fill: Fill | None = fill
        self._run = run

    @property
    def size(self) -> int:
        return self._reader.size

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._reader:
                await self._write(chunk)
                yield chunk
            if self._fill is not None:
                fill, self._fill = self._fill, None
                await self._commit(fill)
        finally:
            if self._fill is not None:  # the reader failed or the client went away: no copy
                with contextlib.suppress(RuntimeError, OSError):  # RuntimeError: the executor is shut
                    await self._run(self._fill.abort)

    async def _commit(self, fill: Fill) -> None:
        """Keep the copy when its bytes are the blob's; when not, the answer is broken off
        (ObjectIntegrityError: the store gave other bytes than it stored)."""
        try:
            path = await self._run(fill.commit)
        except ObjectIntegrityError as exc:
            log.error("local_blob_rejected", sha256=fill.sha256, error=str(exc))
            raise
        except OSError as exc:
            log.warning("local_blob_not_kept", sha256=fill.sha256, error=str(exc))
            return
        log.info("local_blob_kept", sha256=fill.sha256, bytes=fill.size, path=str(path))

    async def _write(self, chunk: bytes) -> None:
        if self._fill is None:
            return
        try:
            await self._run(self._fill.write, chunk)
        except ObjectIntegrityError as exc:  # more bytes than the blob has (the fill is dropped)
            log.error("local_blob_rejected", sha256=self._fill.sha256, error=str(exc))
            raise
        except OSError as exc:  # a full disk: the answer goes on without a copy
            log.warning("local_blob_not_kept", sha256=self._fill.sha256, error=str(exc))
            await self._run(self._fill.abort)
            self._fill = None
