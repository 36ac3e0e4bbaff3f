"""The shared tier of cached public files (issue 14): one upstream fetch per cold file across
replicas, the object store as the tier every replica reads, each replica's disk cache the fast one.

On a miss of the local tier (``Downloader`` claimed the part file), ``fill`` writes the file into
that part file from one of:

* the object store, when ``cached_files`` lists the file (verified again as it is copied);
* upstream, holding the file's lock across replicas (``proxy.storage.sql.advisory``); once the
  file is verified and in the local tier, ``publish`` puts it into the object store, lists it,
  and lets go of the lock;
* nothing yet: another replica holds the lock. This one waits (polling the row and the lock, at
  most ``wait_bound`` seconds) and then reads the store, or takes over the download when the
  holder died (its session ended, so PostgreSQL released its lock).

When the database or the store cannot be asked, the file is fetched from upstream and served,
not shared (logged): a public file never waits on the shared tier's health.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from proxy.core.errors import (
    DatabaseUnavailable,
    IntegrityError,
    ObjectIntegrityError,
    ObjectNotFound,
    ObjectStoreUnavailable,
    UpstreamTimeout,
)
from proxy.storage.objects import ObjectStore, blob_key
from proxy.storage.shared_usage import SharedUsage
from proxy.storage.sql.advisory import Locks
from proxy.storage.sql.cached_files import CachedFileRows, CachedRecord, row_key
from proxy.storage.upstream_files import Part
from proxy.upstream.downloads import FileSpec, expected_digest
from proxy.upstream.tee import Download

T = TypeVar("T")
log = structlog.get_logger(__name__)
FIRST_POLL_S, MAX_POLL_S = 0.05, 0.5  # between looks at the row and the lock while another replica downloads
Stream = Callable[[Download, FileSpec, Part], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Claim:
    """What ``fill`` did: ``lock`` names the lock held for a file fetched from upstream (publish
    it, or ``release``); None when the file came from the store or is not to be shared."""

    lock: str | None = None


class SharedFiles:
    """The shared tier over ``rows`` (the database), ``locks`` and ``objects``. ``wait_bound(size)``
    is how long a replica waits for another one's download (seconds). Tasks are owned: ``close``."""

    def __init__(self, rows: CachedFileRows, locks: Locks, objects: ObjectStore, executor: Executor,
                 wait_bound: Callable[[int | None], float], usage: SharedUsage) -> None:
        self._rows = rows
        self._locks = locks
        self._objects = objects
        self._executor = executor
        self._wait_bound = wait_bound
        self.usage = usage
        self._tasks: set[asyncio.Task[None]] = set()

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def close(self) -> None:
        """Wait for publications under way (each bounded by the store's and database's timeouts)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._locks.close()

    async def fill(self, download: Download, spec: FileSpec, part: Part, stream: Stream) -> Claim:
        """Write ``spec``'s bytes into ``part`` (see the module's docstring), verified as
        ``stream`` (upstream's) or the copy from the store verifies them; raises as they do."""
        record, lock = await self._claim(spec, use_store=True)
        if record is not None:
            try:
                await self._copy(record, download, spec, part)
                self.usage.used(record.key)
                return Claim()
            except (ObjectNotFound, ObjectIntegrityError, IntegrityError) as exc:
                await self._forget(record, exc)
                if download.written:  # bytes are out: this download has failed
                    raise
                record, lock = await self._claim(spec, use_store=False)  # the row was wrong: upstream's
            except ObjectStoreUnavailable as exc:
                if download.written:
                    raise
                log.warning("shared_file_store_unavailable", filename=spec.filename, error=str(exc))
        try:
            await stream(download, spec, part)
        except BaseException:
            if lock is not None:
                await asyncio.shield(self._locks.unlock(lock))
            raise
        return Claim(lock)

    async def _claim(self, spec: FileSpec, use_store: bool) -> tuple[CachedRecord | None, str | None]:
        """(the shared copy, None), or (None, the lock now held), or (None, None): not shared.
        Without ``use_store``, only the lock is waited for (the listed copy proved unusable)."""
        name = row_key(spec.project, spec.filename)
        loop = asyncio.get_running_loop()
        bound = self._wait_bound(spec.size)
        deadline = loop.time() + bound
        delay, waited, locked = FIRST_POLL_S, False, False
        try:
            while True:
                record = await self._find(spec) if use_store else None
                if record is not None:
                    return record, None
                locked = await self._locks.try_lock(name)
                if locked:
                    record = await self._find(spec) if use_store else None  # published since the look
                    if record is not None:
                        await self._locks.unlock(name)
                        return record, None
                    return None, name
                if not waited:
                    log.info("shared_file_waiting", project=spec.project, filename=spec.filename)
                    waited = True
                if loop.time() >= deadline:
                    raise UpstreamTimeout(f"{spec.filename}: another replica has been downloading it "
                                          f"for more than {bound:g} s")
                await asyncio.sleep(delay)  # a poll's pause: the other replica is not ours to await
                delay = min(delay * 2, MAX_POLL_S)
        except DatabaseUnavailable as exc:
            if locked:
                await self._locks.unlock(name)
            log.warning("shared_file_unshared", filename=spec.filename, error=str(exc))
            return None, None

    async def _find(self, spec: FileSpec) -> CachedRecord | None:
        """The row of ``spec``'s file when it names the bytes the listing does."""
        record = await self._run(self._rows.find, spec.project, spec.filename)
        if record is None:
            return None
        listed = spec.hashes.get("sha256")
        if (spec.size is not None and spec.size != record.size) or (listed and listed.lower() != record.sha256):
            log.warning("shared_file_differs", filename=spec.filename, stored=record.sha256, listed=listed)
            return None
        return record

    async def _copy(self, record: CachedRecord, download: Download, spec: FileSpec, part: Part) -> None:
        """The blob into ``part``, checked against its row's sha256 and size and the listing's digest."""
        reader = await self._objects.open(blob_key(record.sha256))
        download.expected_size = record.size
        own, listed = hashlib.sha256(), expected_digest(spec.hashes)
        other = hashlib.new(listed[0]) if listed and listed[0] != "sha256" else None
        async for chunk in reader:
            if download.written + len(chunk) > record.size:
                raise IntegrityError(f"{spec.filename}: the object store's copy is longer than {record.size} bytes")
            await self._run(_write, part, (own, other), chunk)
            download.wrote(download.written + len(chunk))
        if download.written != record.size or own.hexdigest() != record.sha256:
            raise IntegrityError(f"{spec.filename}: the object store's copy does not match its sha256 and size")
        if listed and other is not None and other.hexdigest() != listed[1]:
            raise IntegrityError(f"{spec.filename}: the object store's copy does not match the listing's {listed[0]}")
        log.info("shared_file_copied", project=spec.project, filename=spec.filename, bytes=record.size)

    async def _forget(self, record: CachedRecord, exc: Exception) -> None:
        log.error("shared_file_damaged", filename=record.filename, sha256=record.sha256, error=str(exc))
        try:
            await self._run(self._rows.forget, record)
        except DatabaseUnavailable as failure:
            log.warning("shared_file_forget_failed", filename=record.filename, error=str(failure))

    async def release(self, claim: Claim) -> None:
        """Let go of a claim's lock without publishing (the file did not land locally)."""
        if claim.lock is not None:
            await self._locks.unlock(claim.lock)

    def publish(self, claim: Claim, spec: FileSpec, path: Path) -> None:
        """In an owned task: put the verified file at ``path`` into the store, list it, then let
        go of the lock (also when either fails: the file then stays this replica's alone)."""
        if claim.lock is None:
            return
        task = asyncio.create_task(self._publish(claim.lock, spec, path), name=f"publish {spec.filename}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, lock: str, spec: FileSpec, path: Path) -> None:
        try:
            listed = spec.hashes.get("sha256")
            if listed and spec.size is not None:  # verified against them; the put checks them again
                digest, size = listed.lower(), spec.size
            else:
                digest, size = await self._run(_sha256_and_size, path)
            record = CachedRecord(spec.project, spec.filename, digest, size)
            key = blob_key(digest)
            await self._objects.put_file_async(key, path, digest, size)

            def ensure_blob() -> None:
                if self._objects.stat(key) != size:
                    self._objects.put_file(key, path, digest, size)

            await self._run(self._rows.record, record, ensure_blob)
            log.info("shared_file_published", project=spec.project, filename=spec.filename, bytes=size)
        except (ObjectStoreUnavailable, ObjectIntegrityError, DatabaseUnavailable, OSError) as exc:
            log.warning("shared_file_not_published", project=spec.project, filename=spec.filename, error=str(exc))
            return
        finally:
            await self._locks.unlock(lock)
        await self.usage.evict_if_over()


def _write(part: Part, hashers: tuple[Any, Any], chunk: bytes) -> None:
    part.write(chunk)
    for hasher in hashers:
        if hasher is not None:
            hasher.update(chunk)


def _sha256_and_size(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
