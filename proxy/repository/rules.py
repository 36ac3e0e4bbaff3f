"""Rules wrapped around a component: names it must never be asked for.

Each rule is itself a Repository (``proxy.repository.base``): it answers ProjectNotFound for a
name it excludes, before the inner component (an upstream) is ever asked, and leaves those names
out of the inner component's list. An allow-list or a policy filter is one more class like these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from proxy.core.errors import ProjectNotFound
from proxy.core.names import is_valid_project_name, matches_any
from proxy.repository.base import ProjectList, ProjectPage, Repository, Resource


class Excluding:
    """The inner component minus the names ``excluded`` says yes to."""

    def __init__(self, inner: Repository, excluded: Callable[[str], bool], why: str) -> None:
        self.inner = inner
        self._excluded = excluded
        self._why = why

    def _check(self, name: str) -> None:
        if self._excluded(name):
            raise ProjectNotFound(f"No project named {name!r} ({self._why}).", project=name)

    async def claims(self, name: str) -> bool:
        return not self._excluded(name) and await self.inner.claims(name)

    async def project_page(self, name: str, *, cached_only: bool = False) -> ProjectPage:
        self._check(name)
        return await self.inner.project_page(name, cached_only=cached_only)

    async def resource(self, project: str, filename: str) -> Resource:
        self._check(project)
        return await self.inner.resource(project, filename)

    async def project_list(self) -> ProjectList:
        listed = await self.inner.project_list()
        inner_names, excluded = listed.names, self._excluded

        def names() -> Sequence[str]:
            return [name for name in inner_names() if not excluded(name)]

        return ProjectList(listed.source, listed.version, names, listed.cache)


def reserved(inner: Repository, patterns: tuple[str, ...]) -> Excluding:
    """Names reserved for private use (fnmatch patterns on normalised names): never sent to
    ``inner``, 404 until uploaded here (dependency confusion)."""
    return Excluding(inner, lambda name: bool(patterns) and matches_any(name, patterns), "reserved for private use")


def valid_names(inner: Repository) -> Excluding:
    """Only valid project names (STANDARDS A2) reach ``inner``: an upstream that strips or
    normalises what it is given would answer ``internal-tool `` with another project."""
    return Excluding(inner, lambda name: not is_valid_project_name(name), "not a valid project name")
