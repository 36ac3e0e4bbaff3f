"""The shared mode's private component (issue 14): private projects in the database that every
replica shares, their files in the object store.

Nothing on the hot path asks the database: the set of private names and the projects already
read are held in memory, and dropped as the ``changes`` table says they changed. A follower
reads that table when PostgreSQL notifies a commit (``proxy.storage.sql.changefeed``) and every
POLL_INTERVAL anyway (SQLite, or the notifying connection lost), so an upload through one
replica shows on the others within a second. A page's version is the project's serial and a
digest of what is stored, so copies rendered from another state never pass for this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog
from cachetools import LRUCache

from proxy.core import render
from proxy.core.errors import DatabaseUnavailable, ProjectNotFound
from proxy.core.flights import SingleFlight
from proxy.core.merge import Source
from proxy.core.models import PrivateProject
from proxy.core.names import normalize
from proxy.core.urls import METADATA_SUFFIX
from proxy.objectsettings import ObjectStoreSettings
from proxy.repository.base import ObjectReader, ProjectList, ProjectPage, Resource, StoredObject
from proxy.repository.blobtier import BlobTier
from proxy.storage.localblobs import LocalBlobs
from proxy.storage.objects import ObjectStore, blob_key
from proxy.storage.sql.changefeed import conninfo, listen
from proxy.storage.sql.private_index import Change, SqlPrivateStorage

T = TypeVar("T")
log = structlog.get_logger(__name__)
POLL_INTERVAL = 0.5  # seconds between reads of the changes table when no notification came
METADATA_SIZES = 4096  # sizes of .metadata blobs remembered (the rows list only their digest)


@dataclass(frozen=True, slots=True)
class Loaded:
    version: str
    project: PrivateProject


class SharedPrivateRepository:
    """The Repository of private projects (``proxy.repository.base.PrivateComponent``) on the
    shared database ``store`` and the object store ``objects``. In stream mode with a
    ``data_dir``, blobs read whole are kept in its local tier (``cache/blobs``, at most
    ``settings.local_cache`` bytes) and sent from there. ``start`` before use (reads the
    names, starts following changes), ``close`` at the end."""

    def __init__(self, store: SqlPrivateStorage, objects: ObjectStore, settings: ObjectStoreSettings,
                 executor: Executor, poll_interval: float = POLL_INTERVAL, data_dir: Path | None = None) -> None:
        self._store = store
        self._objects = objects
        self._redirect = settings.serve == "redirect"
        self._ttl = settings.presign_ttl
        self._executor = executor
        self._local = None if self._redirect or data_dir is None else \
            BlobTier(LocalBlobs(data_dir / "cache" / "blobs", settings.local_cache), executor)
        self._poll_interval = poll_interval
        self._names: dict[str, str] = {}  # normalised -> display
        self._names_version = 0
        self._projects: dict[str, Loaded] = {}
        self._epochs: dict[str, int] = {}  # bumped when a project changes: loads begun before are not kept
        self._last = 0  # the id of the last change taken in
        self._loads = SingleFlight()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._metadata_sizes: LRUCache[str, int] = LRUCache(METADATA_SIZES)
        self._refreshing = asyncio.Lock()

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def start(self) -> None:
        """Read the names (DatabaseUnavailable when the database cannot be reached), then follow
        the changes in the background."""
        if self._local is not None:
            await self._local.start()
        self._last = await self._run(self._store.last_change)
        await self._load_names()
        self._tasks.append(asyncio.create_task(self._follow(), name="private-changes"))
        url = conninfo(self._store.engine)
        if url is not None:
            self._tasks.append(asyncio.create_task(listen(url, self._wake.set), name="private-change-feed"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._loads.close()

    async def _follow(self) -> None:
        failing = False
        while True:
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()
            try:
                await self.refresh()
            except DatabaseUnavailable as exc:
                if not failing:  # once per outage, not twice a second
                    log.warning("private_changes_unavailable", error=str(exc))
                failing = True
            else:
                if failing:
                    log.info("private_changes_resumed", last_change=self._last)
                failing = False

    async def refresh(self) -> None:
        """Take in every change committed since the last one taken in (DatabaseUnavailable)."""
        async with self._refreshing:
            while changes := await self._run(self._store.changes_since, self._last):
                self._apply(changes)
                if any(change.serial == 0 or change.project not in self._names for change in changes):
                    await self._load_names()

    def _apply(self, changes: list[Change]) -> None:
        for change in changes:
            self._projects.pop(change.project, None)
            self._epochs[change.project] = self._epochs.get(change.project, 0) + 1
            self._last = max(self._last, change.id)

    async def _load_names(self) -> None:
        names = await self._run(self._store.project_names)
        self._names = {normalize(display): display for display in names}
        self._names_version += 1

    async def claims(self, name: str) -> bool:
        """Whether ``name`` is a private project: a look-up in memory."""
        return name in self._names

    async def project(self, name: str) -> PrivateProject | None:
        """The stored project ``name`` (normalised), or None when it is not private."""
        loaded = await self._load(name)
        return loaded.project if loaded else None

    async def _load(self, name: str) -> Loaded | None:
        if name not in self._names:
            return None
        cached = self._projects.get(name)
        if cached is not None:
            return cached
        return await self._loads.run(name, functools.partial(self._read, name))

    async def _read(self, name: str) -> Loaded | None:
        epoch = self._epochs.get(name, 0)
        loaded = await self._run(_read_project, self._store, name)
        if loaded is not None and self._epochs.get(name, 0) == epoch:  # no change came in meanwhile
            self._projects[name] = loaded
        return loaded

    async def project_page(self, name: str, *, cached_only: bool = False) -> ProjectPage:
        """The project's page; its version is the project's serial and a digest of its state.
        ProjectNotFound when ``name`` is not private."""
        loaded = await self._load(name)
        if loaded is None:
            raise ProjectNotFound(f"No project named {name!r}.", project=name)
        project = loaded.project
        return ProjectPage(name, Source.PRIVATE, loaded.version, functools.partial(render.private_index_page, project),
                           len(project.files), project=project)

    async def project_list(self) -> ProjectList:
        version, names = await self.project_names()
        return ProjectList(Source.PRIVATE, version, lambda: names)

    async def project_names(self) -> tuple[Hashable, list[str]]:
        """Display names of every private project (sorted by normalised name), with a version
        that changes when they do."""
        return ("shared", self._names_version), [self._names[name] for name in sorted(self._names)]

    async def resource(self, project: str, filename: str) -> Resource:
        """A file the project lists, or the ``.metadata`` of one that has it, in the object
        store; ProjectNotFound otherwise (an unlisted blob is never served)."""
        loaded = await self._load(project)
        listed = loaded.project.file(filename.removesuffix(METADATA_SUFFIX)) if loaded else None
        if listed is None or (filename != listed.filename and listed.metadata_sha256 is None):
            raise ProjectNotFound(f"No file {filename!r} in project {project!r}.", project=project)
        if filename == listed.filename:
            digest, size = listed.sha256, listed.size
        else:
            assert listed.metadata_sha256 is not None
            digest, size = listed.metadata_sha256, await self._metadata_size(listed.metadata_sha256)
        if self._local is not None and (path := await self._local.find(digest, size)) is not None:
            # Size and sha256 known: sent without a stat, with the ETag the streamed copy has.
            return Resource(Source.PRIVATE, path=path, size=size, version=digest)
        key = blob_key(digest)
        location = functools.partial(self._objects.presigned_url, key, self._ttl) if self._redirect else None
        return Resource(Source.PRIVATE, blob=StoredObject(digest, size, functools.partial(self._open, key, digest, size), location))

    async def _open(self, key: str, digest: str, size: int, start: int, end: int | None) -> ObjectReader:
        reader = await self._objects.open(key, start, end)
        if self._local is not None and start == 0 and end in (None, size):  # the whole blob: keep a copy
            return await self._local.filling(reader, digest, size)
        return reader

    async def _metadata_size(self, digest: str) -> int:
        size = self._metadata_sizes.get(digest)
        if size is None:
            size = await self._objects.head(blob_key(digest))
            if size is None:
                raise ProjectNotFound(f"The metadata blob {digest} is missing from the object store.")
            self._metadata_sizes[digest] = size
        return size


def _read_project(store: SqlPrivateStorage, name: str) -> Loaded | None:
    """The project and its page version (blocking: a database read, and a digest of the rows)."""
    project = store.load(name)
    if project is None:
        return None
    state = json.dumps(project.to_json(), sort_keys=True, separators=(",", ":")).encode()
    return Loaded(f"db-{project.serial}-{hashlib.sha256(state).hexdigest()[:20]}", project)
