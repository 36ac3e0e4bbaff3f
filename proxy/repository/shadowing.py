"""The priority rule: the first component that claims a name answers for it alone.

With the private component first, a private name shadows the public project entirely: its pages,
files and JSON documents come from private storage, and a file missing there is a 404, never a
fall-through to upstream (dependency confusion). Lists are merged, one name per normalised name,
the first component's spelling winning.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from typing import Any

from proxy.core import merge
from proxy.core.errors import ProjectNotFound
from proxy.core.flights import SingleFlight
from proxy.core.merge import Source
from proxy.repository.base import ProjectList, ProjectPage, Repository, Resource


class Shadowing:
    """A Repository (``proxy.repository.base``) answering from the first of ``components`` that
    claims a name. Merging the lists (600,000 upstream names) runs in ``executor``, once per
    version of the lists, shared by concurrent callers."""

    def __init__(self, components: Sequence[Repository], executor: Executor) -> None:
        self.components = tuple(components)
        self._executor = executor
        self._merged: tuple[Hashable, list[str]] | None = None  # the last merge, by version of the lists
        self._merges = SingleFlight()

    async def owner(self, name: str) -> Repository | None:
        """The component that answers for ``name``, or None when none claims it."""
        for component in self.components:
            if await component.claims(name):
                return component
        return None

    async def _owner_or_404(self, name: str) -> Repository:
        owner = await self.owner(name)
        if owner is None:
            raise ProjectNotFound(f"No project named {name!r}.", project=name)
        return owner

    async def claims(self, name: str) -> bool:
        return await self.owner(name) is not None

    async def project_page(self, name: str, *, cached_only: bool = False) -> ProjectPage:
        return await (await self._owner_or_404(name)).project_page(name, cached_only=cached_only)

    async def resource(self, project: str, filename: str) -> Resource:
        return await (await self._owner_or_404(project)).resource(project, filename)

    async def project_list(self) -> ProjectList:
        """Every component's names merged; the source is the first's alone while the others list
        nothing, else MERGED; the cache state is the last one that reports one."""
        lists = [await component.project_list() for component in self.components]
        listing = [item for item in lists if item.version is not None]
        version = tuple(item.version for item in lists)
        merged = self._merged
        if merged is None or merged[0] != version:
            sources = [item.names for item in listing]
            merged = self._merged = (version, await self._merges.run(version, lambda: self._run(_merge, sources)))
        names = merged[1]
        others = listing[1:] if listing and listing[0].source is lists[0].source else listing
        source = Source.MERGED if others else lists[0].source
        cache = next((item.cache for item in reversed(lists) if item.cache is not None), None)
        return ProjectList(source, version, lambda: names, cache)

    async def _run(self, func: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def close(self) -> None:
        """End a merge still running (at shutdown): no task outlives the app."""
        await self._merges.close()


def _merge(sources: list[Callable[[], Sequence[str]]]) -> list[str]:
    """Blocking, O(names): run in the executor. Each later source is merged into the earlier ones."""
    names = merge.project_names(sources[0]() if sources else (), sources[1]() if len(sources) > 1 else (), ())
    for source in sources[2:]:
        names = merge.project_names(names, source(), ())
    return names
