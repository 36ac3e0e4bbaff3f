"""The repository protocol: what every source of projects answers, and the values it answers with.

A *component* is one source (private storage, a cached upstream) or a rule wrapped around one
(reserved names, valid names); the catalog composes them by priority (a private name shadows the
public one). Components answer with models, never with HTTP representations: negotiated bytes,
ETags and compression are made once, above them (``proxy.web.representations``), keyed by each
answer's ``version``. A new source or rule (a second upstream, an allow-list, a policy filter) is
one more component in the chain, not edits across layers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from proxy.core.indexpage import IndexPage
from proxy.core.merge import CacheState, Source
from proxy.core.models import PrivateProject


@dataclass(frozen=True, slots=True)
class ProjectPage:
    """One project's simple page as the answering source holds it.

    ``build`` makes the PEP 503/691 page model; it is pure but O(files), so representations call
    it only when ``version`` (which changes whenever the model does) is not rendered yet, and in an
    executor for big pages (``files`` is the hint). ``project`` is the stored private project (for
    the JSON API and UI); None for an upstream page.
    """

    name: str  # normalised
    source: Source
    version: Hashable
    build: Callable[[], IndexPage]
    files: int
    cache: CacheState | None = None  # None for private pages: read from storage, not cached
    project: PrivateProject | None = None


@dataclass(frozen=True, slots=True)
class ProjectList:
    """The names a source serves (display spelling). ``names`` may be O(all projects) (600,000
    upstream): call it in an executor. ``version`` changes whenever the names do; None when the
    source has no list (never fetched, or listing switched off)."""

    source: Source
    version: Hashable
    names: Callable[[], Sequence[str]] = field(default=lambda: ())
    cache: CacheState | None = None


class VerifiedStream(Protocol):
    """The bytes of a file being downloaded, as they are verified (``proxy.upstream.tee``): a
    reader never sees the clean end of bytes that failed their listed hash or size."""

    @property
    def size(self) -> int | None:
        """The size upstream declared, when it did (bytes)."""
        ...

    @property
    def filename(self) -> str: ...

    async def start(self) -> None:
        """Wait until the download answered; raises its UpstreamError (nothing sent yet)."""
        ...

    async def complete(self) -> Path:
        """Wait for the whole file, verified and committed; its path."""
        ...

    async def read(self) -> bytes:
        """The next verified chunk; b"" after the last; raises when the download failed."""
        ...

    def close(self) -> None:
        """Stop reading (the download itself goes on for other readers)."""
        ...


class ObjectReader(Protocol):
    """An object being read from the object store: ``size`` is the whole object's bytes, and
    iterating yields the bytes asked for; a failure of the store midway raises ProxyError."""

    @property
    def size(self) -> int: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...


@dataclass(frozen=True, slots=True)
class StoredObject:
    """A complete file in the object store (the shared mode's private files), verified when it
    was stored: ``size`` bytes hashing to ``sha256`` (hex). ``open(start, end)`` reads bytes
    ``start`` to ``end`` (exclusive; None: to the end); ``location``, when files are served by
    redirect, makes a short-lived presigned URL of it. Both raise ObjectStoreUnavailable when the
    store fails, ``open`` ObjectNotFound when the object is missing."""

    sha256: str
    size: int
    open: Callable[[int, int | None], Awaitable[ObjectReader]]
    location: Callable[[], Awaitable[str]] | None = None


@dataclass(frozen=True, slots=True)
class Resource:
    """A file of a project: a complete local file (private, or cached and verified), the
    verified stream of a download in progress, or a complete file in the object store (exactly
    one of ``path``, ``stream`` and ``blob``).

    What the component knows of a local file without opening it, so that it is served without
    a stat: ``size`` in bytes, and ``version``, which names its bytes (the sha256 hex digest its
    index lists for a private file; ``<mtime_ns hex>-<size hex>`` from the stat that found a
    cached one): the ETag is made of it. None when unknown (the server then reads them off the
    open file)."""

    source: Source
    path: Path | None = None
    stream: VerifiedStream | None = None
    blob: StoredObject | None = None
    cache: CacheState | None = None
    policy: str | None = None  # "warn; <why>" when the policy warns about its release
    size: int | None = None
    version: str | None = None


class Repository(Protocol):
    """What every component answers. Names are PEP 503-normalised; every method raises
    ``ProjectNotFound`` for a project (or file) this component does not serve, and upstream
    components raise ``UpstreamError`` subclasses when they cannot tell."""

    async def claims(self, name: str) -> bool:
        """Whether this component answers for ``name`` at all (cheap: no upstream request). A
        component that claims a name answers for it alone, even with ProjectNotFound."""
        ...

    async def project_page(self, name: str, *, cached_only: bool = False) -> ProjectPage:
        """The project's simple page; with ``cached_only``, only what is held here, however old,
        never asking upstream (the web interface's view); ProjectNotFound when nothing is."""
        ...

    async def project_list(self) -> ProjectList:
        """Every project name this component serves."""
        ...

    async def resource(self, project: str, filename: str) -> Resource:
        """A file the project's page lists (or its ``.metadata``), local or streamed verified."""
        ...


class PrivateComponent(Repository, Protocol):
    """The private projects' component (``proxy.repository.private`` on the data directory,
    ``proxy.repository.shared`` on the shared database): the Repository, and what the JSON API,
    the interface and uploads read of it."""

    async def project(self, name: str) -> PrivateProject | None:
        """The stored project ``name`` (normalised), or None when it is not private."""
        ...

    async def project_names(self) -> tuple[Hashable, list[str]]:
        """Display names of every private project, with a version that changes when they do."""
        ...

    async def refresh(self) -> None:
        """Take in what this process just changed (an upload), so that it answers with it at once."""
        ...
