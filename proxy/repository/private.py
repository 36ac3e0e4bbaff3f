"""The private index: projects loaded from storage and pages rendered once per change."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from proxy.core import compression, render
from proxy.core.models import PrivateProject
from proxy.core.negotiate import JSON_V1, TEXT_HTML
from proxy.storage.private import PrivateStorage, Stamp
from proxy.storage.private_pages import RenderedPages

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Rendered:
    """A page as sent: its bytes and, when that pays, a gzip copy, each with its own strong ETag
    (RFC 9110 8.8.3: representations that differ in content coding differ in validator)."""

    body: bytes
    content_type: str
    etag: str
    gzip: bytes | None = None
    gzip_etag: str = ""

    @property
    def weight(self) -> int:
        """Bytes held in memory."""
        return len(self.body) + len(self.gzip or b"")


def _etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def rendered(body: bytes, content_type: str) -> Rendered:
    """The page ``body`` with its validator and its gzip copy, compressed now. Blocking for a big
    page (about 35 ms per MB): run it in the executor."""
    return rendered_as(body, content_type, compression.gzipped(body))


def rendered_as(body: bytes, content_type: str, packed: bytes | None) -> Rendered:
    """The page ``body`` with the gzip copy ``packed`` made earlier (None: it does not pay)."""
    return Rendered(body, content_type, _etag(body), packed, _etag(packed) if packed is not None else "")


def _kind(content_type: str) -> str:
    """Name of a page's rendering in ``pagefiles``; its gzip copy is ``<kind>-gzip``."""
    return "json" if content_type == JSON_V1 else "html"


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
        """The project's simple page in ``content_type``, rendered and compressed once per index
        change: kept in memory, and on disk so that a restart or another worker reads it instead."""
        stamp = self._storage.index_stamp(name)
        if stamp is None:
            return None
        cached = self._pages.get((name, content_type))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        page = await self._run(self._stored, name, stamp.token, content_type)
        if page is None:
            loaded = await self._load(name)
            if loaded is None:
                return None
            stamp, project = loaded
            page = await self._run(self._render_and_store, project, stamp.token, content_type)
        self._pages[(name, content_type)] = (stamp, page)
        return page

    def _stored(self, name: str, token: str, content_type: str) -> Rendered | None:
        """The page as rendered on disk for this index version; a missing gzip copy is made again."""
        kind = _kind(content_type)
        body = self._files.read(name, token, kind)
        if body is None:
            return None
        packed = self._files.read(name, token, f"{kind}-gzip")
        if packed is None and (packed := compression.gzipped(body)) is not None:
            self._files.write(name, token, f"{kind}-gzip", packed)
        return rendered_as(body, content_type, packed)

    def _render_and_store(self, project: PrivateProject, token: str, content_type: str) -> Rendered:
        page = rendered(_render(project, content_type), content_type)
        kind = _kind(content_type)
        if page.gzip is not None:  # first: a reader that finds the page finds its copy too
            self._files.write(project.name, token, f"{kind}-gzip", page.gzip)
        self._files.write(project.name, token, kind, page.body)
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
