"""The private index: projects loaded from storage and pages rendered once per change."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from proxy import render
from proxy.models import PrivateProject
from proxy.negotiate import JSON_V1, TEXT_HTML
from proxy.pagefiles import RenderedPages
from proxy.storage import PrivateStorage, Stamp

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Rendered:
    """A page as sent: bytes plus the validator that lets clients revalidate cheaply."""

    body: bytes
    content_type: str
    etag: str


def rendered(body: bytes, content_type: str) -> Rendered:
    return Rendered(body, content_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


def _render(project: PrivateProject, content_type: str) -> bytes:
    """Blocking for a big project (milliseconds): run in the executor."""
    model = render.private_index_page(project)
    return render.project_json(model) if content_type == JSON_V1 else render.project_html(model)


class IndexService:
    """Serves private projects. Freshness is checked by the index file's stamp on every call,
    so changes from other processes (the CLI, other workers) show at once."""

    def __init__(self, storage: PrivateStorage, executor: Executor, pages: RenderedPages) -> None:
        self._storage = storage
        self._executor = executor
        self._files = pages
        self._projects: dict[str, tuple[Stamp, PrivateProject]] = {}
        self._pages: dict[tuple[str, str], tuple[Stamp, Rendered]] = {}
        self._names: tuple[Stamp | None, list[str]] | None = None

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def project(self, name: str) -> PrivateProject | None:
        """The stored project ``name`` (normalised), or None when it is not private."""
        loaded = await self._load(name)
        return loaded[1] if loaded else None

    async def _load(self, name: str) -> tuple[Stamp, PrivateProject] | None:
        stamp = self._storage.index_stamp(name)  # one stat on the loop: cheaper than a thread hop
        if stamp is None:
            self._projects.pop(name, None)
            return None
        cached = self._projects.get(name)
        if cached is not None and cached[0] == stamp:
            return cached
        project = await self._run(self._storage.load, name)
        if project is None:
            return None
        self._projects[name] = (stamp, project)
        return stamp, project

    async def page(self, name: str, content_type: str) -> Rendered | None:
        """The project's simple page in ``content_type``, rendered once per index change: kept in
        memory, and on disk so that a restart or another worker reads it instead of rendering."""
        stamp = self._storage.index_stamp(name)
        if stamp is None:
            return None
        cached = self._pages.get((name, content_type))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        kind = "json" if content_type == JSON_V1 else "html"
        body = await self._run(self._files.read, name, stamp.token, kind)
        if body is None:
            loaded = await self._load(name)
            if loaded is None:
                return None
            stamp, project = loaded
            body = await self._run(_render, project, content_type)
            await self._run(self._files.write, name, stamp.token, kind, body)
        page = rendered(body, content_type)
        self._pages[(name, content_type)] = (stamp, page)
        return page

    async def prerender(self, name: str) -> None:
        """Render the project's pages now (after an upload), not on the first install's request."""
        for content_type in (JSON_V1, TEXT_HTML):
            await self.page(name, content_type)

    async def project_names(self) -> tuple[Stamp | None, list[str]]:
        """Display names of every private project, with the stamp that changes when one appears."""
        stamp = self._storage.projects_stamp()
        if self._names is None or self._names[0] != stamp:
            self._names = (stamp, await self._run(self._storage.project_names))
        return self._names
