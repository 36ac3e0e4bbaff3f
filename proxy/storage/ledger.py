"""The file cache's shared accounting: one SQLite database that every server process of a data
directory (and the CLI) reads and writes, so that the size limit holds for their sum and the
figures are the same whichever process is asked.

One row per cached file: its size and when it was last used (unix seconds). Totals are kept by
triggers, so reading them is O(1). Every write is a short ``BEGIN IMMEDIATE`` transaction: SQLite
serialises them across processes, so an eviction is decided once, by one process, over the true
sum. WAL mode lets readers go on meanwhile. Every call blocks; the server makes them in a
thread of their own (``proxy.storage.cache_usage``).

The database is derived data: when it is unreadable it is rebuilt from a scan of the files.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)
Key = tuple[str, str]  # (project, filename)
BUSY_TIMEOUT_S = 30.0  # another process's transaction (an eviction unlinking files) may take a while

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    project TEXT NOT NULL, filename TEXT NOT NULL, size INTEGER NOT NULL, last_used REAL NOT NULL,
    PRIMARY KEY (project, filename)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_last_use ON files (last_used);
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 1), files INTEGER NOT NULL, bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO totals VALUES (1, 0, 0);
CREATE TRIGGER IF NOT EXISTS files_added AFTER INSERT ON files BEGIN
    UPDATE totals SET files = files + 1, bytes = bytes + NEW.size WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS files_removed AFTER DELETE ON files BEGIN
    UPDATE totals SET files = files - 1, bytes = bytes - OLD.size WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS files_resized AFTER UPDATE OF size ON files BEGIN
    UPDATE totals SET bytes = bytes - OLD.size + NEW.size WHERE id = 1; END;
"""


@dataclass(frozen=True, slots=True)
class CachedEntry:
    key: Key
    size: int
    last_used: float  # unix time


@dataclass(frozen=True, slots=True)
class Totals:
    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Eviction:
    keys: list[Key]
    freed: int  # bytes unlinked
    remaining: int  # bytes still counted after it


class Ledger:
    """One connection to the ledger (not thread-safe: one thread uses it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = self._connect()
        except sqlite3.OperationalError:  # cannot be opened, locked, read-only: not ours to remove
            raise
        except sqlite3.DatabaseError as exc:  # not a database, or damaged: it is derived data
            log.warning("cache_ledger_rebuilt", path=str(path), error=str(exc))
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    path.with_name(path.name + suffix).unlink()
            self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a lost last write is corrected by the next scan
            db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")  # idempotent: every process runs it
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Reading --------------------------------------------------------------------------------

    def totals(self) -> Totals:
        files, size = self._db.execute("SELECT files, bytes FROM totals WHERE id = 1").fetchone()
        return Totals(files, size)

    def keys(self) -> list[Key]:
        """Every counted file, least recently used first."""
        return [(p, f) for p, f in self._db.execute("SELECT project, filename FROM files ORDER BY last_used")]

    def projects(self) -> int:
        """How many projects have at least one counted file."""
        return int(self._db.execute("SELECT count(DISTINCT project) FROM files").fetchone()[0])

    # Writing --------------------------------------------------------------------------------

    def record(self, key: Key, size: int, at: float) -> None:
        """A file now in the cache (new or replaced), used at ``at``."""
        with _transaction(self._db):
            self._db.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?) ON CONFLICT (project, filename) "
                "DO UPDATE SET size = excluded.size, last_used = max(last_used, excluded.last_used)",
                (*key, size, at))

    def touch(self, uses: Iterable[tuple[Key, float]]) -> None:
        """Later last uses of counted files, in one transaction (a batch from one process)."""
        with _transaction(self._db):
            self._db.executemany(
                "UPDATE files SET last_used = max(last_used, ?) WHERE project = ? AND filename = ?",
                [(at, project, filename) for (project, filename), at in uses])

    def forget(self, keys: Iterable[Key]) -> None:
        with _transaction(self._db):
            self._db.executemany("DELETE FROM files WHERE project = ? AND filename = ?", list(keys))

    def evict(self, max_size: int, spare: frozenset[Key], recent_since: float,
              remove: Callable[[list[Key]], int]) -> Eviction:
        """Remove least recently used files until at most ``max_size`` bytes are counted.

        Never one in ``spare`` (being served by the caller); ones used since ``recent_since``
        (maybe being opened by another process) only when the others are not enough. ``remove``
        unlinks the chosen files inside the transaction, so no other process decides on them
        meanwhile; it returns the bytes it freed.
        """
        with _transaction(self._db):
            total = self.totals().bytes
            if total <= max_size:
                return Eviction([], 0, total)
            chosen: list[Key] = []
            counted = 0
            rows = self._db.execute("SELECT project, filename, size, last_used FROM files ORDER BY last_used")
            candidates = [((p, f), size, used) for p, f, size, used in rows if (p, f) not in spare]
            for old_enough in (True, False):
                for key, size, used in candidates:
                    if total - counted <= max_size:
                        break
                    if (used < recent_since) == old_enough:
                        chosen.append(key)
                        counted += size
            self._db.executemany("DELETE FROM files WHERE project = ? AND filename = ?", chosen)
            freed = remove(chosen)
            return Eviction(chosen, freed, self.totals().bytes)

    def reconcile(self, entries: Iterable[CachedEntry], entry_of: Callable[[Key], CachedEntry | None]) -> int:
        """Make the ledger agree with a scan of the files (``entries``); returns rows changed.

        A file can come or go while the scan runs (another process caches or evicts it), so
        every difference is looked at again (``entry_of``: a fresh stat, or None when the file
        is gone) inside the transaction before it is written."""
        scanned = {entry.key: entry for entry in entries}
        with _transaction(self._db):
            counted = {(p, f): size for p, f, size in self._db.execute("SELECT project, filename, size FROM files")}
            suspects = [key for key, entry in scanned.items() if counted.get(key) != entry.size]
            suspects += [key for key in counted if key not in scanned]
            changed = 0
            for key in suspects:
                now = entry_of(key)
                if now is None:
                    if key in counted:
                        self._db.execute("DELETE FROM files WHERE project = ? AND filename = ?", key)
                        changed += 1
                elif counted.get(key) != now.size:
                    self._db.execute(
                        "INSERT INTO files VALUES (?, ?, ?, ?) ON CONFLICT (project, filename) "
                        "DO UPDATE SET size = excluded.size", (*key, now.size, now.last_used))
                    changed += 1
            return changed


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE: take the write lock at once (waiting up to the busy timeout), so two
    processes never both read a total and then act on it."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
