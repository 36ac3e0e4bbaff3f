"""The private component: projects uploaded here, read from storage.

Freshness is checked by the index file's stamp (one stat) on every call, so changes from other
processes (the CLI, other workers) show at once; a project is parsed once per stamp.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from proxy.core import render
from proxy.core.errors import ProjectNotFound
from proxy.core.lru import LruCache
from proxy.core.merge import Source
from proxy.core.models import PrivateProject
from proxy.core.urls import METADATA_SUFFIX
from proxy.repository.base import ProjectList, ProjectPage, Resource
from proxy.storage.private import PrivateStorage, Stamp

T = TypeVar("T")
# Parsed projects kept per server process (bytes, least recently used go first). Unbounded, every
# private project ever asked for stayed parsed, long descriptions included (issue 16).
_PROJECTS_BUDGET = 32 * 1024**2


def _weight(loaded: tuple[Stamp, PrivateProject]) -> int:
    """Bytes a parsed project holds, as measured (tracemalloc): ~700 per file, ~1,300 per release
    besides its description's text."""
    project = loaded[1]
    return (1000 + 700 * len(project.files) + 1300 * len(project.releases)
            + sum(len(release.description) for release in project.releases))


class PrivateRepository:
    """The Repository of private projects (``proxy.repository.base``)."""

    def __init__(self, storage: PrivateStorage, executor: Executor) -> None:
        self._storage = storage
        self._executor = executor
        self._projects: LruCache[str, tuple[Stamp, PrivateProject]] = LruCache(_PROJECTS_BUDGET, _weight)
        self._names: tuple[Stamp | None, list[str]] | None = None

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def claims(self, name: str) -> bool:
        """Whether ``name`` is a private project: one stat, on the loop (cheaper than a thread hop)."""
        return self._storage.is_private(name)

    async def project(self, name: str) -> PrivateProject | None:
        """The stored project ``name`` (normalised), or None when it is not private."""
        loaded = await self._load(name)
        return loaded[1] if loaded else None

    async def _load(self, name: str) -> tuple[Stamp, PrivateProject] | None:
        stamp = self._storage.index_stamp(name)
        if stamp is None:
            self._projects.pop(name)
            return None
        cached = self._projects.get(name)
        if cached is not None and cached[0] == stamp:
            return cached
        project = await self._run(self._storage.load, name)
        if project is None:
            return None
        self._projects.put(name, (stamp, project))
        return stamp, project

    async def refresh(self) -> None:
        """Nothing to do: every call checks the index file's stamp."""

    async def project_page(self, name: str, *, cached_only: bool = False) -> ProjectPage:
        """The project's page; its version is the index file's stamp token (it names the rendered
        copies kept on disk). ProjectNotFound when ``name`` is not private."""
        loaded = await self._load(name)
        if loaded is None:
            raise ProjectNotFound(f"No project named {name!r}.", project=name)
        stamp, project = loaded
        return ProjectPage(name, Source.PRIVATE, stamp.token, functools.partial(render.private_index_page, project),
                           len(project.files), project=project)

    async def project_list(self) -> ProjectList:
        """Display names of every private project; the version changes when one appears or goes."""
        stamp, names = await self.project_names()
        return ProjectList(Source.PRIVATE, stamp, lambda: names)

    async def project_names(self) -> tuple[Stamp | None, list[str]]:
        """Display names of every private project, with the stamp that changes when one appears."""
        stamp = self._storage.projects_stamp()
        if self._names is None or self._names[0] != stamp:
            self._names = (stamp, await self._run(self._storage.project_names))
        return self._names

    async def resource(self, project: str, filename: str) -> Resource:
        """A file the project's index lists, or the ``.metadata`` of one that has it. An unlisted
        file may be half of an interrupted upload: ProjectNotFound."""
        loaded = await self._load(project)
        listed = loaded[1].file(filename.removesuffix(METADATA_SUFFIX)) if loaded else None
        if listed is None or (filename != listed.filename and listed.metadata_sha256 is None):
            raise ProjectNotFound(f"No file {filename!r} in project {project!r}.", project=project)
        path = self._storage.file_path(project, filename)
        if filename == listed.filename:
            return Resource(Source.PRIVATE, path=path, size=listed.size, version=listed.sha256)
        return Resource(Source.PRIVATE, path=path, version=listed.metadata_sha256)  # PEP 658 lists no size
