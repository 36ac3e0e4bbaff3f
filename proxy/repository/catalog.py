"""One index over private storage and upstream, where a private name always shadows upstream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from proxy.core import merge, render
from proxy.core.errors import ProjectNotFound
from proxy.core.merge import Source
from proxy.core.names import is_valid_project_name
from proxy.core.negotiate import JSON_V1
from proxy.core.urls import METADATA_SUFFIX
from proxy.repository.private import IndexService, Rendered, rendered
from proxy.storage.private import PrivateStorage
from proxy.storage.upstream_files import FileCache
from proxy.storage.upstream_pages import CachedProjectList
from proxy.upstream.downloads import Downloader
from proxy.upstream.health import UpstreamHealth
from proxy.upstream.pages import CacheState, PublicIndex
from proxy.upstream.tee import FileStream
from proxy.upstream.wheel_metadata import WheelMetadata

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ServedPage:
    page: Rendered
    source: Source
    cache: CacheState | None = None  # None for private pages: they are read from storage


@dataclass(frozen=True, slots=True)
class ServedFile:
    """A complete local file (private, or cached and verified), or the verified stream of a download."""

    source: Source
    path: Path | None = None
    stream: FileStream | None = None
    cache: CacheState | None = None


@dataclass(frozen=True, slots=True)
class Upstreams:
    """The upstream half; absent when the proxy runs with upstream switched off."""

    index: PublicIndex
    files: FileCache
    downloader: Downloader
    wheel_metadata: WheelMetadata
    list_projects: bool
    health: UpstreamHealth
    url: str  # for display: no credentials


class Catalog:
    def __init__(self, private: IndexService, storage: PrivateStorage, upstreams: Upstreams | None,
                 reserved: tuple[str, ...], executor: Executor) -> None:
        self.private = private
        self._storage = storage
        self.upstreams = upstreams
        self._reserved = reserved
        self._executor = executor
        # Per content type: the version of the two name lists it renders, and the (shared) render.
        self._root_pages: dict[str, tuple[tuple[Any, ...], asyncio.Future[Rendered]]] = {}
        self._merged: tuple[tuple[Any, ...], asyncio.Future[list[str]]] | None = None

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    def _source_if_public(self, name: str) -> Source:
        return merge.source_for(name, is_private=False, reserved=self._reserved,
                                upstream_enabled=self.upstreams is not None)

    async def page(self, name: str, content_type: str) -> ServedPage:
        """The project page of ``name`` (normalised) from the one source that may answer for it."""
        private = await self.private.page(name, content_type)
        if private is not None:
            return ServedPage(private, Source.PRIVATE)
        page, state = await self.upstream_for(name).index.page(name, content_type)
        return ServedPage(page, Source.UPSTREAM, state)

    def upstream_for(self, name: str) -> Upstreams:
        """The upstream half, for a name that is not private (the caller checked); ProjectNotFound
        when the name is reserved, not a valid project name, or upstream is off: such a name is
        never sent upstream. (An upstream that strips or normalises what it is given would
        answer "internal-tool " or "internal‐tool" with the public project of a reserved name.)"""
        if self.upstreams is None or not is_valid_project_name(name) or self._source_if_public(name) is Source.NONE:
            raise ProjectNotFound(f"No project named {name!r}.")
        return self.upstreams

    async def file(self, name: str, filename: str) -> ServedFile:
        """A file of ``name``: a private project's own, else upstream's (cached or being fetched)."""
        project = await self.private.project(name)
        if project is not None:
            listed = project.file(filename.removesuffix(METADATA_SUFFIX))
            # Only files the index lists are served: an unlisted one may be half of an interrupted upload.
            if listed is None or (filename != listed.filename and listed.metadata_sha256 is None):
                raise ProjectNotFound(f"No file {filename!r} in project {name!r}.")
            return ServedFile(Source.PRIVATE, path=self._storage.file_path(name, filename))
        upstreams = self.upstream_for(name)
        size = upstreams.files.cached_size(name, filename)  # one stat, on the loop
        if size is not None:
            upstreams.files.usage.used((name, filename), size)
            return ServedFile(Source.UPSTREAM, path=upstreams.files.path(name, filename), cache=CacheState.HIT)
        spec = await upstreams.index.file_spec(name, filename)
        if spec.metadata_of is not None:  # a wheel's core metadata that upstream does not offer
            path = await upstreams.wheel_metadata.path(spec)
            return ServedFile(Source.UPSTREAM, path=path, cache=CacheState.MISS)
        return ServedFile(Source.UPSTREAM, stream=upstreams.downloader.stream(spec), cache=CacheState.MISS)

    def pinned(self, name: str, filename: str) -> contextlib.AbstractContextManager[None]:
        """Hold while serving a file: cache eviction leaves it alone meanwhile."""
        if self.upstreams is None:
            return contextlib.nullcontext()
        return self.upstreams.files.usage.pinned((name, filename))

    async def root_page(self, content_type: str) -> ServedPage:
        """Private projects, plus upstream's list when configured; re-rendered when either changes.

        Upstream's list may hold 600,000 names: merging and rendering it take seconds, so both run
        in the executor, once per version of the two lists, shared by concurrent requests."""
        private_stamp, private_names = await self.private.project_names()
        public = None
        state = None
        if self.upstreams is not None and self.upstreams.list_projects:
            public, state = await self.upstreams.index.project_list()
        source = Source.MERGED if public else Source.PRIVATE
        version = (private_stamp, public.fetched_at if public else None)
        cached = self._root_pages.get(content_type)
        if cached is None or cached[0] != version:
            cached = (version, self._run_shared(self._render_root(version, private_names, public, content_type)))
            self._root_pages[content_type] = cached
        return ServedPage(await _shielded(cached[1]), source, state)

    async def _render_root(self, version: tuple[Any, ...], private: list[str],
                           public: CachedProjectList | None, content_type: str) -> Rendered:
        merged = self._merged
        if merged is None or merged[0] != version:
            names = self._run(merge.project_names, private, public.names if public else (), self._reserved)
            merged = (version, self._run_shared(names))
            self._merged = merged
        return await self._run(_render_root, await _shielded(merged[1]), content_type)

    async def close(self) -> None:
        """Wait for root pages still being made (at shutdown): no task outlives the app."""
        tasks = [task for _, task in self._root_pages.values()] + ([self._merged[1]] if self._merged else [])
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run_shared(self, work: Awaitable[T]) -> asyncio.Future[T]:
        """``work`` as a task every request for the same version awaits (never cancelled by one
        leaving); a failure is not kept, the next request tries again."""
        task = asyncio.ensure_future(work)
        task.add_done_callback(self._forget_failure)
        return task

    def _forget_failure(self, task: asyncio.Future[Any]) -> None:
        if task.cancelled() or task.exception() is not None:
            self._root_pages = {k: v for k, v in self._root_pages.items() if v[1] is not task}
            if self._merged is not None and self._merged[1] is task:
                self._merged = None


async def _shielded(task: asyncio.Future[T]) -> T:
    """Await a shared task: a request cancelled meanwhile leaves it running for the others."""
    return await asyncio.shield(task)


def _render_root(names: list[str], content_type: str) -> Rendered:
    body = render.root_json(names) if content_type == JSON_V1 else render.root_html(names)
    return rendered(body, content_type)
