"""Upstream pages remembered across restarts: the records, what stores them (``PageStore``), and
the embedded mode's store, on disk: the only user of diskcache (the shared mode's is in the
database: ``proxy.storage.sql.upstream_pages``).

Values are JSON, never pickles, so a cache written by one version is read safely by the next.
Every call blocks (SQLite underneath): the server runs them in its executor.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import diskcache
import structlog
from yarl import URL

from proxy.core.indexpage import IndexPage

log = structlog.get_logger(__name__)
_FORMAT = 2  # bump when the record's JSON shape changes; older records then read as misses
_LOCK_WAIT_S = 1.0  # SQLite busy timeout: a slow cache is a miss, never a stuck request
# SQLite's memory per connection, and diskcache opens one per thread of the executor: its defaults
# (8,192 pages of cache and 64 MiB mapped) took a tree with two workers from 175 to 406 MiB once
# 10,000 cached pages were read (issue 16, bench/ memory-growth). A record is read once and then
# kept parsed in memory (proxy.upstream.pages), so SQLite's own cache has little to save: 1 MiB
# of pages (index pages mostly), and plain reads instead of a mapping.
SQLITE_MEMORY = {"sqlite_cache_size": 256, "sqlite_mmap_size": 0}


def upstream_id(url: str) -> str:
    """Names the upstream index a record came from (issue 12 L8): a digest of its URL, without
    credentials or a trailing slash, so changing them is still the same index; anything else
    (another host, port or path) is another index, whose records read as misses."""
    parsed = URL(url.rstrip("/"))
    plain = parsed.with_user(None) if parsed.user or parsed.password else parsed
    return hashlib.sha256(str(plain).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class CachedPage:
    """What upstream last said about one project: a parsed page (200) or "no such project" (404)."""

    status: int
    fetched_at: float  # unix time of the last answer from upstream (200, 304 or 404)
    page: IndexPage | None = None
    etag: str | None = None
    last_modified: str | None = None
    content_id: str = ""  # identifies the page's content; unchanged by a 304 revalidation
    upstream: str = ""  # ``upstream_id`` of the index it came from: its file URLs lead there

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _FORMAT, "status": self.status, "fetched_at": self.fetched_at,
            "page": self.page.to_json() if self.page else None, "etag": self.etag,
            "last_modified": self.last_modified, "content_id": self.content_id, "upstream": self.upstream,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CachedPage:
        return cls(
            status=data["status"], fetched_at=data["fetched_at"],
            page=IndexPage.from_json(data["page"]) if data["page"] else None,
            etag=data["etag"], last_modified=data["last_modified"], content_id=data["content_id"],
            upstream=data["upstream"],
        )


@dataclass(frozen=True, slots=True)
class CachedProjectList:
    """Upstream's root page: every project name it lists."""

    fetched_at: float
    names: tuple[str, ...] = field(default=())
    etag: str | None = None
    last_modified: str | None = None
    upstream: str = ""  # ``upstream_id`` of the index it came from

    def to_json(self) -> dict[str, Any]:
        return {"format": _FORMAT, "fetched_at": self.fetched_at, "names": list(self.names),
                "etag": self.etag, "last_modified": self.last_modified, "upstream": self.upstream}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CachedProjectList:
        return cls(data["fetched_at"], tuple(data["names"]), data["etag"], data["last_modified"], data["upstream"])


class PageStore(Protocol):
    """Where upstream page records are kept: ``PageCache`` on this host's disk, or the shared
    mode's database (``SqlPageCache``). Every method blocks; none raises for a record that is
    missing, damaged or of another format (a miss: None); a write that cannot be made raises."""

    def page(self, project: str, upstream: str | None = None) -> CachedPage | None:
        """The record of ``project`` (normalised), None when there is none or it came from
        another upstream than ``upstream`` (an ``upstream_id``; None: whichever)."""
        ...

    def store_page(self, project: str, record: CachedPage) -> None: ...

    def project_list(self, upstream: str | None = None) -> CachedProjectList | None:
        """Upstream's project list, as ``page`` finds a project's record."""
        ...

    def store_project_list(self, record: CachedProjectList) -> None: ...

    def volume(self) -> int:
        """Bytes the records take in storage."""
        ...

    def close(self) -> None: ...


class FetchTurns(Protocol):
    """Whose turn it is to fetch a page that several replicas of the shared mode want refreshed
    at once (``proxy.storage.sql.page_locks``); the embedded mode has none."""

    def turn(self, key: str, wait: float) -> AbstractAsyncContextManager[bool]:
        """Hold ``key``'s turn for a block: True when this replica is to fetch, False when
        another one still held the turn after ``wait`` seconds."""
        ...

    async def close(self) -> None: ...


def record_data(raw: object, key: str, upstream: str | None) -> dict[str, Any] | None:
    """The JSON object of a stored record (``raw``: its bytes), or None when it is damaged, of
    another ``_FORMAT``, or from another upstream than ``upstream`` (None: any)."""
    if not isinstance(raw, bytes):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        log.warning("page_cache_corrupt", key=key)
        return None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        return None
    return data if upstream is None or data.get("upstream") == upstream else None


def record_bytes(data: dict[str, Any]) -> bytes:
    """A record's JSON object (``to_json``) as the bytes stored."""
    return json.dumps(data, separators=(",", ":")).encode()


class PageCache:
    """diskcache with a size bound; least recently stored entries are evicted first."""

    def __init__(self, directory: Path, size_limit: int) -> None:
        self.directory = directory
        self._cache = diskcache.Cache(
            str(directory), size_limit=size_limit, timeout=_LOCK_WAIT_S,
            eviction_policy="least-recently-stored", **SQLITE_MEMORY,
        )

    def page(self, project: str, upstream: str | None = None) -> CachedPage | None:
        """The record of ``project``; None when there is none, or it came from another upstream
        than ``upstream`` (an ``upstream_id``; None: whichever it came from)."""
        data = self._get(f"page:{project}", upstream)
        return CachedPage.from_json(data) if data else None

    def store_page(self, project: str, record: CachedPage) -> None:
        self._set(f"page:{project}", record.to_json())

    def project_list(self, upstream: str | None = None) -> CachedProjectList | None:
        """Upstream's project list, as ``page`` finds a project's record."""
        data = self._get("projects", upstream)
        return CachedProjectList.from_json(data) if data else None

    def store_project_list(self, record: CachedProjectList) -> None:
        self._set("projects", record.to_json())

    def volume(self) -> int:
        """Bytes on disk, as diskcache counts them."""
        return int(self._cache.volume())

    def close(self) -> None:
        self._cache.close()

    def _get(self, key: str, upstream: str | None) -> dict[str, Any] | None:
        try:
            raw = self._cache.get(key)
        except diskcache.Timeout:
            log.warning("page_cache_busy", key=key)
            return None
        return record_data(raw, key, upstream)

    def _set(self, key: str, data: dict[str, Any]) -> None:
        try:
            self._cache.set(key, record_bytes(data))
        except diskcache.Timeout:
            log.warning("page_cache_busy", key=key)
