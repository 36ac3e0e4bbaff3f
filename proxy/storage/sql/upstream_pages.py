"""Upstream page records in the shared database (issue 14): one ``upstream_pages`` row per project
page, and one for the project list (name ``""``), so that what one replica fetched every other
one reads instead of asking upstream again (``proxy.upstream.pages`` takes turns to fetch).

A row's ``body`` is the record's JSON (``proxy.storage.upstream_pages``), zlib-compressed: pages
shrink about 5 times and the project list (600k names, ~12 MB of JSON) to ~2.5 MB, which every
replica reads once at start and after each daily refresh. ``content_type`` names that coding;
a row in any other one (written by another version) is a miss, like a record of another format.
The other columns repeat the record's status, validators and moment, for people and queries.

A write never replaces a newer record with an older one (the ``fetched`` moments compare), so
replicas that store at once leave the latest. The cache is bounded as a whole: every replica
counts what it writes and, after ``size_limit // TRIM_FRACTION`` bytes, removes the least
recently stored pages until the bodies fit ``size_limit`` (one replica at a time on
PostgreSQL; the project list is kept: one record, bounded by the client's MAX_PROJECT_LIST_BYTES).
Every method blocks (database I/O): the server calls them in its executor.
"""

from __future__ import annotations

import threading
import zlib
from datetime import datetime, timezone
from typing import Any

import structlog
from sqlalchemy import Engine, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from proxy.core.errors import DatabaseUnavailable
from proxy.storage.sql.engine import reading, writing
from proxy.storage.sql.schema import upstream_pages
from proxy.storage.upstream_pages import CachedPage, CachedProjectList, record_bytes, record_data

log = structlog.get_logger(__name__)
RECORD_TYPE = "application/vnd.pypi-proxy.page-record+json; coding=zlib"
LIST_NAME = ""  # the project list's row
TRIM_FRACTION = 64  # trim after writing this fraction of the limit
_LEVEL = 6  # zlib's default: near level 9's size at half its time
# The key of the lock that lets one replica at a time trim (one bigint: apart from two-int keys).
TRIM_LOCK = 0x75706774  # "upgt"


class SqlPageCache:
    """The ``PageStore`` on a database engine (PostgreSQL or SQLite), bounded by ``size_limit``
    bytes of stored bodies. A database that cannot be reached reads as a miss (upstream is asked
    instead) and fails writes with DatabaseUnavailable."""

    def __init__(self, engine: Engine, size_limit: int) -> None:
        self.engine = engine
        self.size_limit = size_limit
        self._written = 0  # body bytes written since the last trim
        self._lock = threading.Lock()

    def page(self, project: str, upstream: str | None = None) -> CachedPage | None:
        data = self._get(project, upstream)
        return CachedPage.from_json(data) if data else None

    def store_page(self, project: str, record: CachedPage) -> None:
        self._set(project, record.to_json(), record.status, record.etag, record.last_modified, record.fetched_at)

    def project_list(self, upstream: str | None = None) -> CachedProjectList | None:
        data = self._get(LIST_NAME, upstream)
        return CachedProjectList.from_json(data) if data else None

    def store_project_list(self, record: CachedProjectList) -> None:
        self._set(LIST_NAME, record.to_json(), 200, record.etag, record.last_modified, record.fetched_at)

    def volume(self) -> int:
        """Bytes of the stored bodies (compressed), the figure the limit bounds."""
        with reading(self.engine) as connection:
            return int(connection.scalar(select(func.coalesce(func.sum(func.length(upstream_pages.c.body)), 0))) or 0)

    def close(self) -> None:
        """Nothing: the engine is the shared mode's, closed with it."""

    def _get(self, name: str, upstream: str | None) -> dict[str, Any] | None:
        try:
            with reading(self.engine) as connection:
                row = connection.execute(select(upstream_pages.c.body, upstream_pages.c.content_type)
                                         .where(upstream_pages.c.name == name)).first()
        except DatabaseUnavailable as exc:
            log.warning("page_cache_unavailable", key=name, error=exc.reason)
            return None
        if row is None or row.content_type != RECORD_TYPE or row.body is None:
            return None
        try:
            raw = zlib.decompress(row.body)
        except zlib.error:
            log.warning("page_cache_corrupt", key=name)
            return None
        return record_data(raw, name, upstream)

    def _set(self, name: str, data: dict[str, Any], status: int, etag: str | None, last_modified: str | None,
             fetched_at: float) -> None:
        body = zlib.compress(record_bytes(data), _LEVEL)
        values = {"name": name, "body": body, "content_type": RECORD_TYPE, "etag": etag,
                  "last_modified": last_modified, "status": status,
                  "fetched": datetime.fromtimestamp(fetched_at, timezone.utc)}
        with writing(self.engine) as connection:
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            statement = dialect.insert(upstream_pages).values(values)
            connection.execute(statement.on_conflict_do_update(
                index_elements=[upstream_pages.c.name],
                set_={key: statement.excluded[key] for key in values if key != "name"},
                where=upstream_pages.c.fetched <= statement.excluded.fetched,  # never an older record
            ))
        with self._lock:
            self._written += len(body)
            due = self._written >= self.size_limit // TRIM_FRACTION
            if due:
                self._written = 0
        if due:
            self.trim()

    def trim(self) -> int:
        """Remove the least recently stored pages until the bodies fit ``size_limit``; returns
        how many went (0 also when another replica is trimming now)."""
        table = upstream_pages.c
        kept = select(func.coalesce(func.sum(func.length(table.body)), 0)).where(table.name == LIST_NAME)
        with writing(self.engine) as connection:
            if connection.dialect.name == "postgresql" and not connection.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": TRIM_LOCK}):
                return 0
            room = self.size_limit - int(connection.scalar(kept) or 0)
            newest_first = select(table.name, func.sum(func.length(table.body)).over(
                order_by=(table.fetched.desc(), table.name)).label("total")).where(table.name != LIST_NAME).subquery()
            over = select(newest_first.c.name).where(newest_first.c.total > room)
            removed = connection.execute(upstream_pages.delete().where(table.name.in_(over))).rowcount
        if removed:
            log.info("page_cache_trimmed", pages=removed, limit_bytes=self.size_limit)
        return int(removed)
