"""Blobs in an object store (issue 14): an S3 bucket or a local directory through obstore,
content-addressed keys, puts verified before the object exists, streamed reads with ranges,
presigned URLs; every failure of the store one domain error naming it.

obstore's blocking calls run in the store's own threads: its asyncio API completes futures from
tokio's threads, which abort the process when that races the interpreter's exit (pyo3 on
Python < 3.14), and its blocking API needs no such hand-over."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import re
from collections.abc import AsyncIterator, Callable, Container, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import obstore
import structlog
from obstore.exceptions import BaseError
from obstore.store import LocalStore, S3Store

from proxy.core.errors import ObjectIntegrityError, ObjectNotFound, ObjectStoreUnavailable
from proxy.objectsettings import ObjectStoreSettings
from proxy.storage.objectclients import failure_reason, s3_stores, store_name

if TYPE_CHECKING:
    from obstore import BytesStream, GetOptions, GetResult, ObjectMeta

BLOBS = "sha256/"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
READ_CHUNK = 1024 * 1024  # bytes read from a local file at a time when putting it
STREAM_CHUNK = 256 * 1024  # chunks a read yields: what one download holds in memory
# Larger files go up in parts of this size (S3's minimum part is 5 MiB), PART_CONCURRENCY at a
# time: one upload holds at most PART_SIZE * (PART_CONCURRENCY + 1) bytes in memory.
PART_SIZE = 8 * 1024 * 1024
PART_CONCURRENCY = 2
# A blob nobody references is garbage once it is this old (seconds): younger ones may belong to an
# upload that put its blob and has yet to commit the row naming it. A put that finds its blob
# already stored rewrites it when older than half this, so the commit that follows keeps it.
SWEEP_GRACE = 6 * 3600.0
# Calls to the store at once per server process (each holds a thread while it waits).
THREADS = 16
T = TypeVar("T")
log = structlog.get_logger(__name__)


def blob_key(sha256: str) -> str:
    """The key of the blob whose bytes hash to ``sha256`` (64 lower-case hex digits):
    ``sha256/ab/cd/abcd…``, two levels of fan-out. ValueError for anything else."""
    if not _SHA256.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return f"{BLOBS}{sha256[:2]}/{sha256[2:4]}/{sha256}"


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key (under the store's prefix), size in bytes, when last written."""

    key: str
    size: int
    last_modified: datetime


class ObjectStream:
    """An opened object: ``size`` is the whole object's bytes, ``start``/``end`` the range being
    read (``end`` exclusive), ``etag`` the store's. Iterating yields the range's bytes in chunks of
    about STREAM_CHUNK; a failure of the store midway raises ObjectStoreUnavailable."""

    def __init__(self, objects: ObjectStore, key: str, result: GetResult) -> None:
        self.key = key
        self.size: int = result.meta["size"]
        self.start, self.end = result.range
        self.etag: str | None = result.meta["e_tag"]
        self._objects = objects
        self._stream: BytesStream = result.stream(min_chunk_size=STREAM_CHUNK)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._objects._call(self.key, next, self._stream, None)) is not None:
            yield chunk


class _SourceUnreadable(Exception):
    """The local file being put failed to read (an OSError): not the store's failure."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class ObjectStore:
    """Blobs under one ``s3://bucket/prefix`` or ``file:///directory`` (``settings.url``).

    Async methods run in the store's THREADS threads and never block the loop; ``put_file`` is
    blocking, for an executor thread (``put_file_async`` runs it in the store's). Every failure of
    the store (connection refused or dropped, timeout, 5xx, credentials refused) raises
    ObjectStoreUnavailable naming the store; a missing key is ObjectNotFound (or None, or nothing,
    where the method says so). ``close`` when done."""

    def __init__(self, settings: ObjectStoreSettings, reuse_within: float = SWEEP_GRACE / 2) -> None:
        """Blocking for a ``file://`` store (creates its directory). ValueError without ``settings.url``."""
        if settings.url is None:
            raise ValueError("no object store is configured ([storage] objects)")
        self.settings = settings
        self.name = store_name(settings)
        self.reuse_within = reuse_within
        self._store: S3Store | LocalStore
        self._streams: S3Store | LocalStore
        if settings.is_s3:
            self._store, self._streams = s3_stores(settings)
        else:
            self._store = self._streams = LocalStore(settings.url.removeprefix("file://"), mkdir=True,
                                                     automatic_cleanup=True)
        self._executor = ThreadPoolExecutor(THREADS, thread_name_prefix="objects")

    def close(self) -> None:
        """Take no more calls; those running finish on their own (and are joined at exit)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    @contextlib.contextmanager
    def translated(self, key: str) -> Iterator[None]:
        """Turn obstore's and the OS's errors about ``key`` into this package's."""
        try:
            yield
        except FileNotFoundError:
            raise ObjectNotFound(self.name, key) from None
        except (BaseError, OSError) as exc:  # OSError: timeouts, connections, a file:// store's disk
            log.warning("object_store_failed", store=self.name, key=key, error=str(exc).strip().splitlines()[:1])
            raise ObjectStoreUnavailable(self.name, failure_reason(exc)) from None

    async def _call(self, key: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``func`` (a blocking obstore call about ``key``) in the store's threads, errors translated."""
        with self.translated(key):
            call = functools.partial(func, *args, **kwargs)
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def put_file(self, key: str, path: Path, sha256: str, size: int) -> None:
        """Store the file at ``path`` under ``key``, as bytes that hash to ``sha256`` (hex) and
        count ``size``. Blocking: run it in an executor (or ``await put_file_async``).

        The file is read once, streamed (in parts of PART_SIZE when larger than that) and verified
        as it goes; a mismatch raises ObjectIntegrityError before the object is completed, and the
        upload is aborted: nothing is left under ``key``. An object already under ``key`` with
        that size, written within ``reuse_within`` seconds, is kept (the file is still verified).
        OSError when ``path`` cannot be read; ObjectStoreUnavailable when the store fails."""
        with self.translated(key):
            existing = _head(self._store, key)
        try:
            with open(path, "rb") as file:
                if existing is not None and existing["size"] == size and _age(existing) < self.reuse_within:
                    for _ in _verified(file, key, sha256, size):
                        pass
                    return
                with self.translated(key):
                    if size <= PART_SIZE:
                        data = b"".join(_verified(file, key, sha256, size))
                        obstore.put(self._store, key, data, use_multipart=False)
                    else:
                        obstore.put(self._store, key, _verified(file, key, sha256, size),
                                    chunk_size=PART_SIZE, max_concurrency=PART_CONCURRENCY)
        except _SourceUnreadable as exc:
            raise exc.error from None

    async def put_file_async(self, key: str, path: Path, sha256: str, size: int) -> None:
        """``put_file`` in the store's threads."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self.put_file, key, path, sha256, size)

    async def open(self, key: str, start: int = 0, end: int | None = None) -> ObjectStream:
        """The object under ``key``, from byte ``start`` to ``end`` (exclusive; None: its end), to
        stream. ObjectNotFound when there is none; ValueError when the range is empty or starts
        at or past the object's end (the HTTP layer answers 416 before asking)."""
        if start < 0 or (end is not None and end <= start):
            raise ValueError(f"an empty byte range: {start} to {end}")
        options: GetOptions = {}
        if end is not None:
            options["range"] = (start, end)
        elif start:
            options["range"] = {"offset": start}
        try:
            return ObjectStream(self, key, await self._call(key, obstore.get, self._streams, key, options=options))
        except ObjectStoreUnavailable:
            size = await self.head(key) if start else None
            if size is not None and start >= size:
                raise ValueError(f"{key} has {size} bytes: a range from byte {start} is past its end") from None
            raise

    def stat(self, key: str) -> int | None:
        """``head``, blocking: for executor threads and the command line."""
        with self.translated(key):
            meta = _head(self._store, key)
        return None if meta is None else meta["size"]

    def remove(self, key: str) -> None:
        """``delete``, blocking: for executor threads and the command line."""
        with self.translated(key):
            _delete(self._store, key)

    async def head(self, key: str) -> int | None:
        """The size in bytes of the object under ``key``, None when there is none."""
        meta = await self._call(key, _head, self._store, key)
        return None if meta is None else meta["size"]

    async def delete(self, key: str) -> None:
        """Remove the object under ``key``; nothing to remove is no error."""
        await self._call(key, _delete, self._store, key)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with the whole path segments of ``prefix`` (``sha256/ab``
        holds ``sha256/ab/cd/…``, not ``sha256/abc…``), in pages from the store, in no set order."""
        pages = await self._call(prefix, obstore.list, self._store, prefix or None, chunk_size=1000)
        while (page := await self._call(prefix, next, pages, None)) is not None:
            for meta in page:
                yield ObjectInfo(meta["path"], meta["size"], meta["last_modified"])

    async def orphans(self, referenced: Container[str], grace: float = SWEEP_GRACE) -> AsyncIterator[ObjectInfo]:
        """The blobs whose keys are not in ``referenced`` and that were last written more than
        ``grace`` seconds ago: garbage, safe to delete (a shorter grace risks a blob whose upload
        has yet to commit the row naming it)."""
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=grace)
        async for info in self.list(BLOBS.rstrip("/")):
            if info.key not in referenced and info.last_modified < cutoff:
                yield info

    async def sweep(self, referenced: Container[str], grace: float = SWEEP_GRACE) -> int:
        """Delete the ``orphans`` as they are listed; returns how many."""
        deleted = 0
        async for info in self.orphans(referenced, grace):
            await self.delete(info.key)
            log.info("object_swept", store=self.name, key=info.key, size=info.size)
            deleted += 1
        return deleted

    async def presigned_url(self, key: str, ttl: float) -> str:
        """A URL anyone may GET the object under ``key`` with, for ``ttl`` seconds (SigV4 query
        signing; the store checks it). ValueError for a ``file://`` store, which cannot sign.
        The object is not asked for: a missing key is the client's 404 from the store."""
        if not isinstance(self._store, S3Store):
            raise ValueError(f"{self.name} cannot sign URLs: serving by redirect needs an s3:// store")
        return await self._call(key, obstore.sign, self._store, "GET", key, timedelta(seconds=ttl))

    async def check(self) -> None:
        """Ask the store for one page of its listing: ObjectStoreUnavailable when it cannot answer,
        the bucket does not exist or the credentials are refused (start-up and health checks)."""
        try:
            await self._call("", _first_page, self._store)
        except ObjectNotFound:
            raise ObjectStoreUnavailable(self.name, "the bucket or directory does not exist") from None


def _head(store: S3Store | LocalStore, key: str) -> ObjectMeta | None:
    try:
        return obstore.head(store, key)
    except FileNotFoundError:
        return None


def _delete(store: S3Store | LocalStore, key: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        obstore.delete(store, key)


def _first_page(store: S3Store | LocalStore) -> None:
    next(iter(obstore.list(store, None, chunk_size=1)), None)


def _age(meta: ObjectMeta) -> float:
    return (datetime.now(timezone.utc) - meta["last_modified"]).total_seconds()


def _verified(file: IO[bytes], key: str, sha256: str, size: int) -> Iterator[bytes]:
    """The file's bytes in chunks, hashed and counted as they go: ObjectIntegrityError as soon as
    there are more than ``size``, or after the last one when the count or hash differ."""
    digest, count = hashlib.sha256(), 0
    while True:
        try:
            chunk = file.read(READ_CHUNK)
        except OSError as exc:
            raise _SourceUnreadable(exc) from exc
        if not chunk:
            break
        count += len(chunk)
        if count > size:
            raise ObjectIntegrityError(key, (sha256, size), (None, count))
        digest.update(chunk)
        yield chunk
    if count != size or digest.hexdigest() != sha256:
        raise ObjectIntegrityError(key, (sha256, size), (digest.hexdigest(), count))
