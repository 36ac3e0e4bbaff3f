"""The records of the cluster's shared tier of cached public files (issue 14): one ``cached_files``
row per upstream file some replica verified and put into the object store, content-addressed like
the private blobs (``sha256/ab/cd/<sha256>``, ``proxy.storage.objects.blob_key``).

A row is written only once its blob is in the store, under the blob's lock (``lock_blobs``): a
removal of the same bytes waits for it, and finds it. Eviction deletes rows first (least recently
used, one replica at a time), then each blob no row lists any more, private or cached, under the
same lock. Every call blocks (the database, and the store for ``record``'s check): executor threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, bindparam, delete, func, insert, select, text, update

from proxy.core.timestamps import utc_now
from proxy.storage.sql.engine import reading, writing
from proxy.storage.sql.schema import cached_files
from proxy.storage.sql.writes import lock_blobs, referenced

# The advisory lock only one replica at a time evicts under (a two-int key: apart from the others).
EVICTION_LOCK = (0x63616368, 0)  # "cach"


def row_key(project: str, filename: str) -> str:
    """The ``key`` of a cached file's row: ``<normalised project>/<filename>``."""
    return f"{project}/{filename}"


@dataclass(frozen=True, slots=True)
class CachedRecord:
    """A public file in the shared tier: ``size`` bytes hashing to ``sha256`` (hex), its blob
    under ``blob_key(sha256)``."""

    project: str
    filename: str
    sha256: str
    size: int

    @property
    def key(self) -> str:
        return row_key(self.project, self.filename)


class CachedFileRows:
    """The ``cached_files`` table of ``engine``. DatabaseUnavailable when it cannot be reached."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def find(self, project: str, filename: str) -> CachedRecord | None:
        """The shared copy of ``filename``, None when no replica shared it."""
        with reading(self.engine) as connection:
            row = connection.execute(select(cached_files.c.sha256, cached_files.c.size)
                                     .where(cached_files.c.key == row_key(project, filename))).first()
        return None if row is None else CachedRecord(project, filename, row.sha256, int(row.size))

    def record(self, record: CachedRecord, ensure_blob: Callable[[], None]) -> None:
        """List ``record`` (replacing an earlier row of the filename), its last use now.
        ``ensure_blob`` (blocking: puts the blob again when it is missing) runs under the blob's
        lock first: an eviction of the same bytes may have deleted it since it was put."""
        now = utc_now()
        with writing(self.engine) as connection:
            lock_blobs(connection, [record.sha256])
            ensure_blob()
            connection.execute(delete(cached_files).where(cached_files.c.key == record.key))
            connection.execute(insert(cached_files).values(
                key=record.key, project=record.project, filename=record.filename, sha256=record.sha256,
                size=record.size, created=now, last_used=now))

    def forget(self, record: CachedRecord) -> None:
        """Remove the row of ``record`` when it still names the same bytes (its blob proved
        missing or damaged); the blob is left for eviction or ``check --repair``."""
        with writing(self.engine) as connection:
            connection.execute(delete(cached_files).where(cached_files.c.key == record.key,
                                                          cached_files.c.sha256 == record.sha256))

    def touch(self, uses: Sequence[tuple[str, float]]) -> None:
        """Last uses (row key, POSIX seconds), batched: one transaction, never moving one back."""
        if not uses:
            return
        values = [{"k": key, "t": datetime.fromtimestamp(at, timezone.utc)} for key, at in uses]
        statement = (update(cached_files).where(cached_files.c.key == bindparam("k"),
                                                cached_files.c.last_used < bindparam("t"))
                     .values(last_used=bindparam("t")))
        with writing(self.engine) as connection:
            connection.execute(statement, values)

    def totals(self) -> tuple[int, int]:
        """(files, bytes) in the shared tier."""
        with reading(self.engine) as connection:
            count, size = connection.execute(select(func.count(), func.coalesce(func.sum(cached_files.c.size), 0))
                                             .select_from(cached_files)).one()
        return int(count), int(size)

    def evict(self, max_size: int) -> list[CachedRecord]:
        """Delete the least recently used rows until the rows' sizes sum to ``max_size`` or less
        (pinned rows stay); the rows deleted. On PostgreSQL one replica at a time: another one
        evicting already makes this a no-op (empty list)."""
        with writing(self.engine) as connection:
            if connection.dialect.name == "postgresql":
                taken = connection.execute(text("SELECT pg_try_advisory_xact_lock(:space, :key)"),
                                           {"space": EVICTION_LOCK[0], "key": EVICTION_LOCK[1]}).scalar_one()
                if not taken:
                    return []
            total = int(connection.execute(select(func.coalesce(func.sum(cached_files.c.size), 0))).scalar_one())
            if total <= max_size:
                return []
            candidates = connection.execute(
                select(cached_files.c.project, cached_files.c.filename, cached_files.c.sha256, cached_files.c.size)
                .where(cached_files.c.pinned_by.is_(None))
                .order_by(cached_files.c.last_used, cached_files.c.key))
            chosen: list[CachedRecord] = []
            for row in candidates:
                if total <= max_size:
                    break
                chosen.append(CachedRecord(row.project, row.filename, row.sha256, int(row.size)))
                total -= int(row.size)
            candidates.close()
            for batch in _batches([record.key for record in chosen], 500):
                connection.execute(delete(cached_files).where(cached_files.c.key.in_(batch)))
        return chosen

    def drop_blobs(self, gone: Iterable[CachedRecord], remove: Callable[[str], None]) -> int:
        """``remove(sha256)`` each blob of ``gone`` that no row lists any more (a private file's
        or another cached file's), under its lock; how many were removed."""
        removed = 0
        for digest in sorted({record.sha256 for record in gone}):
            with writing(self.engine) as connection:
                lock_blobs(connection, [digest])
                if digest not in referenced(connection, [digest]):
                    remove(digest)
                    removed += 1
        return removed


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
