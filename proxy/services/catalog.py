"""One index over private storage and upstream, where a private name always shadows upstream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from proxy import merge, render
from proxy.errors import ProjectNotFound
from proxy.filecache import FileCache
from proxy.health import UpstreamHealth
from proxy.merge import Source
from proxy.names import is_valid_project_name
from proxy.negotiate import JSON_V1
from proxy.services.downloads import Download, Downloader
from proxy.services.index import IndexService, Rendered, rendered
from proxy.services.public import CacheState, PublicIndex
from proxy.services.wheelmeta import WheelMetadata
from proxy.storage import PrivateStorage
from proxy.urls import METADATA_SUFFIX

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ServedPage:
    page: Rendered
    source: Source
    cache: CacheState | None = None  # None for private pages: they are read from storage


@dataclass(frozen=True, slots=True)
class ServedFile:
    """A complete local file (private, or cached and verified), or a download to follow."""

    source: Source
    path: Path | None = None
    download: Download | None = None
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
        self._root_pages: dict[str, tuple[tuple[Any, ...], Rendered]] = {}

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
        return ServedFile(Source.UPSTREAM, download=await upstreams.downloader.fetch(spec),
                          cache=CacheState.MISS)

    def pinned(self, name: str, filename: str) -> contextlib.AbstractContextManager[None]:
        """Hold while serving a file: cache eviction leaves it alone meanwhile."""
        if self.upstreams is None:
            return contextlib.nullcontext()
        return self.upstreams.files.usage.pinned((name, filename))

    async def root_page(self, content_type: str) -> ServedPage:
        """Private projects, plus upstream's list when configured; re-rendered when either changes."""
        private_stamp, private_names = await self.private.project_names()
        public = None
        state = None
        if self.upstreams is not None and self.upstreams.list_projects:
            public, state = await self.upstreams.index.project_list()
        source = Source.MERGED if public else Source.PRIVATE
        version = (private_stamp, public.fetched_at if public else None)
        cached = self._root_pages.get(content_type)
        if cached is None or cached[0] != version:
            names = merge.project_names(private_names, public.names if public else (), self._reserved)
            cached = (version, await self._run(_render_root, names, content_type))
            self._root_pages[content_type] = cached
        return ServedPage(cached[1], source, state)


def _render_root(names: list[str], content_type: str) -> Rendered:
    body = render.root_json(names) if content_type == JSON_V1 else render.root_html(names)
    return rendered(body, content_type)
