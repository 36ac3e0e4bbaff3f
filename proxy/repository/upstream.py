"""The cached-upstream component: public projects, fetched on demand and served from the cache."""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

from proxy.core import conditional, render
from proxy.core.errors import ProjectNotFound
from proxy.core.merge import CacheState, Source
from proxy.repository.base import ProjectList, ProjectPage, Resource
from proxy.storage.upstream_files import FileCache
from proxy.upstream.downloads import Downloader
from proxy.upstream.health import UpstreamHealth
from proxy.upstream.pages import PublicIndex
from proxy.upstream.wheel_metadata import WheelMetadata


@dataclass(frozen=True, slots=True)
class Upstreams:
    """The parts of one upstream index, built by the app factory."""

    index: PublicIndex
    files: FileCache
    downloader: Downloader
    wheel_metadata: WheelMetadata
    list_projects: bool
    health: UpstreamHealth
    url: str  # for display: no credentials


class UpstreamRepository:
    """The Repository of one upstream index (``proxy.repository.base``). It claims every name:
    which names may reach upstream is decided by the rules wrapped around it (reserved, valid)."""

    def __init__(self, parts: Upstreams) -> None:
        self.parts = parts

    async def claims(self, name: str) -> bool:
        return True

    async def project_page(self, name: str, *, cached_only: bool = False) -> ProjectPage:
        """Upstream's page by the freshness rules of ``PublicIndex.lookup`` (its errors too); the
        version is the cached record's content id. ``cached_only``: the copy held, however old."""
        if cached_only:
            held = await self.parts.index.cached_record(name)
            if held is None or held.page is None:
                raise ProjectNotFound(f"No cached project named {name!r}.", project=name)
            record, state = held, CacheState.HIT
        else:
            record, state = await self.parts.index.lookup(name)
        assert record.page is not None  # lookup raises ProjectNotFound for a 404
        return ProjectPage(name, Source.UPSTREAM, record.content_id,
                           functools.partial(render.proxied_index_page, record.page), len(record.page.files), state)

    async def project_list(self) -> ProjectList:
        """Upstream's project list when ``list_projects`` is on and it was ever fetched."""
        if not self.parts.list_projects:
            return ProjectList(Source.UPSTREAM, None)
        record, state = await self.parts.index.project_list()
        if record is None:
            return ProjectList(Source.UPSTREAM, None, cache=state)
        names = record.names
        return ProjectList(Source.UPSTREAM, record.fetched_at, lambda: names, state)

    async def resource(self, project: str, filename: str) -> Resource:
        """A cached file at once; else the verified stream of its download, or a wheel's core
        metadata read out of the wheel when upstream does not offer it (PEP 658)."""
        parts = self.parts
        path = parts.files.path(project, filename)
        found = parts.files.stat_of(path)  # one stat, on the loop
        if found is not None:
            parts.files.usage.used((project, filename), found.st_size)
            return Resource(Source.UPSTREAM, path=path, cache=CacheState.HIT, size=found.st_size,
                            version=conditional.stat_version(found.st_size, found.st_mtime_ns))
        spec = await parts.index.file_spec(project, filename)
        if spec.metadata_of is not None:
            path = await parts.wheel_metadata.path(spec)
            return Resource(Source.UPSTREAM, path=path, cache=CacheState.MISS)
        return Resource(Source.UPSTREAM, stream=parts.downloader.stream(spec), cache=CacheState.MISS)

    def pinned(self, project: str, filename: str) -> contextlib.AbstractContextManager[None]:
        """Hold while serving a file: cache eviction leaves it alone meanwhile."""
        return self.parts.files.usage.pinned((project, filename))
