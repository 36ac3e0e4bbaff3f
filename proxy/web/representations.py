"""Representations of the repository's answers: negotiated JSON/HTML bytes, ETags and gzip copies,
made once per version of a page and kept, for every source alike.

Components of the repository answer with models and a ``version``; this is the one place that
turns them into bytes. Rendered pages are kept in memory (least recently used go first, by
bytes); private pages also on disk (``PageStore``) so a restart or another worker reads them
instead of rendering again. Big pages render in the executor; concurrent requests for a version
not yet rendered share one render.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from multidict import CIMultiDict, CIMultiDictProxy, istr

from proxy.core import compression, render
from proxy.core.flights import SingleFlight
from proxy.core.lru import LruCache
from proxy.core.merge import Source
from proxy.core.negotiate import JSON_V1, TEXT_HTML
from proxy.repository.base import ProjectList, ProjectPage

T = TypeVar("T")
# Below this many files, rendering runs on the loop: a thread hop would cost more.
_INLINE_FILES = 200


# Pages change whenever someone publishes; clients revalidate each time (a 304 is cheap),
# so a new release is installable the moment its upload returns (STANDARDS D2, E5).
PAGE_CACHE_CONTROL = "max-age=0, must-revalidate, public"
# Every page is negotiated by format (PEP 691) and by content coding: caches must key on both.
VARY = "Accept, Accept-Encoding"
# Header names as sent (aiohttp's hdrs.ETAG is spelled "Etag"); istr: case-folded once, not per use.
ETAG, VARY_HEADER, CACHE_CONTROL = istr("ETag"), istr("Vary"), istr("Cache-Control")
CONTENT_TYPE, CONTENT_ENCODING = istr("Content-Type"), istr("Content-Encoding")
# Memory of one representation's prepared headers (two small CIMultiDicts), counted in the LRU.
HEADERS_WEIGHT = 600


@dataclass(frozen=True, slots=True)
class Representation:
    """One content coding of a page as sent: its bytes, its strong ETag, and the headers that are
    the same on every answer with it, made once (the per-request part, X-Proxy-Source and
    X-Proxy-Cache, is added to a copy). ``ok``: Vary, Cache-Control, ETag, Content-Type and,
    when coded, Content-Encoding; ``not_modified`` (a 304): Vary, Cache-Control, ETag."""

    body: bytes
    etag: str
    ok: CIMultiDictProxy[str]
    not_modified: CIMultiDictProxy[str]


def representation(body: bytes, etag: str, content_type: str, coding: str | None) -> Representation:
    """``body`` with its ETag and prepared headers, ``coding`` (Content-Encoding) None for plain."""
    not_modified = CIMultiDict(((VARY_HEADER, VARY), (CACHE_CONTROL, PAGE_CACHE_CONTROL), (ETAG, etag)))
    ok = not_modified.copy()
    ok[CONTENT_TYPE] = content_type
    if coding is not None:
        ok[CONTENT_ENCODING] = coding
    return Representation(body, etag, CIMultiDictProxy(ok), CIMultiDictProxy(not_modified))


@dataclass(frozen=True, slots=True)
class Rendered:
    """A page as sent: its bytes and, when that pays, a gzip copy, each with its own strong ETag
    (RFC 9110 8.8.3: representations that differ in content coding differ in validator), and
    each as a ``Representation`` with its headers prepared."""

    body: bytes
    content_type: str
    etag: str
    gzip: bytes | None = None
    gzip_etag: str = ""
    plain: Representation = field(init=False, repr=False, compare=False)
    packed: Representation | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plain", representation(self.body, self.etag, self.content_type, None))
        packed = None
        if self.gzip is not None:
            packed = representation(self.gzip, self.gzip_etag, self.content_type, compression.GZIP)
        object.__setattr__(self, "packed", packed)

    @property
    def weight(self) -> int:
        """Bytes held in memory."""
        return len(self.body) + len(self.gzip or b"") + HEADERS_WEIGHT * (1 + (self.gzip is not None))


def _etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def rendered(body: bytes, content_type: str, packed: bytes | None = None, *, compress: bool = True) -> Rendered:
    """The page ``body`` with its validator and its gzip copy: ``packed`` when made earlier, else
    compressed now when ``compress`` (blocking, about 35 ms per MB: run big ones in the executor)."""
    if packed is None and compress:
        packed = compression.gzipped(body)
    return Rendered(body, content_type, _etag(body), packed, _etag(packed) if packed is not None else "")


class PageStore(Protocol):
    """Rendered private pages on disk (``proxy.storage.private_pages.RenderedPages``). Blocking."""

    def read(self, project: str, stamp_text: str, kind: str) -> bytes | None: ...

    def write(self, project: str, stamp_text: str, kind: str, body: bytes) -> None: ...


def _kind(content_type: str) -> str:
    """Name of a page's rendering in the store; its gzip copy is ``<kind>-gzip``."""
    return "json" if content_type == JSON_V1 else "html"


def _render_project(page: ProjectPage, content_type: str) -> Rendered:
    model = page.build()
    body = render.project_json(model) if content_type == JSON_V1 else render.project_html(model)
    return rendered(body, content_type)


def _render_root(listed: Callable[[], Sequence[str]], content_type: str) -> Rendered:
    names = listed()
    body = render.root_json(names) if content_type == JSON_V1 else render.root_html(names)
    return rendered(body, content_type)


class Representations:
    """Rendered pages, by (source, project, version, content type); ``memory`` bytes in memory."""

    def __init__(self, executor: Executor, memory: int, store: PageStore | None = None) -> None:
        self._executor = executor
        self._store = store
        self._pages: LruCache[tuple[Any, ...], Rendered] = LruCache(memory, lambda r: r.weight + 200)
        self._renders = SingleFlight()

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def project_page(self, page: ProjectPage, content_type: str) -> Rendered:
        """``page`` in ``content_type`` (JSON_V1 or TEXT_HTML), rendered once per version."""
        key = (page.source, page.name, page.version, content_type)
        cached = self._pages.get(key)
        if cached is not None:
            return cached
        return await self._shared(key, lambda: self._make_project(page, content_type))

    async def _make_project(self, page: ProjectPage, content_type: str) -> Rendered:
        if self._store is not None and page.source is Source.PRIVATE:
            return await self._run(self._stored_or_rendered, page, content_type)
        if page.files <= _INLINE_FILES:
            return _render_project(page, content_type)
        return await self._run(_render_project, page, content_type)

    def _stored_or_rendered(self, page: ProjectPage, content_type: str) -> Rendered:
        """Blocking: the copy on disk for this version, else rendered now and stored (the gzip
        copy first: a reader that finds the page finds its copy too)."""
        assert self._store is not None
        kind, version = _kind(content_type), str(page.version)
        body = self._store.read(page.name, version, kind)
        if body is not None:
            packed = self._store.read(page.name, version, f"{kind}-gzip")
            made = rendered(body, content_type, packed)
            if packed is None and made.gzip is not None:
                self._store.write(page.name, version, f"{kind}-gzip", made.gzip)
            return made
        made = _render_project(page, content_type)
        if made.gzip is not None:
            self._store.write(page.name, version, f"{kind}-gzip", made.gzip)
        self._store.write(page.name, version, kind, made.body)
        return made

    async def prerender(self, page: ProjectPage) -> None:
        """Render both formats now (after an upload), not on the first install's request."""
        for content_type in (JSON_V1, TEXT_HTML):
            await self.project_page(page, content_type)

    async def project_list(self, listing: ProjectList, content_type: str) -> Rendered:
        """The root page of ``listing``: rendered in the executor (600,000 names take seconds)."""
        key = ("root", listing.version, content_type)
        cached = self._pages.get(key)
        if cached is not None:
            return cached
        return await self._shared(key, lambda: self._run(_render_root, listing.names, content_type))

    async def _shared(self, key: tuple[Any, ...], make: Callable[[], Awaitable[Rendered]]) -> Rendered:
        """One render per key however many wait; a request leaving does not cancel it, and a
        failure is not kept (the next request tries again)."""
        async def make_and_keep() -> Rendered:
            page = await make()
            self._pages.put(key, page)
            return page

        return await self._renders.run(key, make_and_keep)

    async def close(self) -> None:
        """Wait for renders still running (at shutdown): no task outlives the app."""
        await self._renders.close()
