"""Cached public files on disk, one real file each, so they are served with sendfile and Range.

Layout under ``<data_dir>/cache``::

    files/<project>/<filename>            a verified upstream distribution or .metadata file
    tmp/.tmp-part-<hash of the key>       downloads in progress, locked by their writer (flock);
                                          renamed into files/ when verified
    usage.sqlite3                         sizes and last uses, shared by all processes (ledger)

A file is only ever renamed into ``files/`` after its hash matched the listing, so whatever is
there is complete; a rename keeps the inode, so a reader of a part file knows the download it
follows was committed when the cached file *is* the file it has open. Every call blocks; the
server runs them in its executor.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG as stat_is_file

from proxy.core.names import check_safe_filename
from proxy.storage.atomic import TEMP_PREFIX, move_into_place, write_atomic
from proxy.storage.cache_usage import CacheUsage
from proxy.storage.ledger import CachedEntry, Key

__all__ = ["CachedEntry", "FileCache", "Key", "Part", "PartState"]


@dataclass(frozen=True, slots=True)
class Part:
    """A claimed part file: ``fd`` writes it (unbuffered: what was written is in the file) and
    holds its lock; ``read_fd`` is the same inode opened for readers, who outlive the lock."""

    fd: int
    read_fd: int

    def write(self, data: bytes) -> None:
        """Append ``data``: in the file (readers see it) when this returns."""
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]


@dataclass(frozen=True, slots=True)
class PartState:
    """A part file another process writes, as seen through an open descriptor of it."""

    size: int  # bytes in it now
    writing: bool  # its writer still holds the lock
    committed: bool  # not writing, and the cached file is this very inode: complete and verified


class FileCache:
    def __init__(self, data_dir: Path, max_size: int | None = None) -> None:
        self.root = data_dir / "cache" / "files"
        self.temp_dir = data_dir / "cache" / "tmp"
        self.max_size = max_size
        # Started by the server; the CLI uses the ledger directly.
        self.usage = CacheUsage(data_dir / "cache" / "usage.sqlite3", max_size, self.remove)

    def prepare(self) -> None:
        for directory in (self.root, self.temp_dir):
            directory.mkdir(parents=True, exist_ok=True)

    def path(self, project: str, filename: str) -> Path:
        check_safe_filename(project)
        check_safe_filename(filename)
        return self.root / project / filename

    def cached_size(self, project: str, filename: str) -> int | None:
        """The size of a cached file, or None when it is not cached (one stat)."""
        found = self.stat_of(self.path(project, filename))
        return found.st_size if found is not None else None

    @staticmethod
    def stat_of(path: Path) -> os.stat_result | None:
        """The stat of the cached file at ``path`` (from ``path()``), or None when it is not cached.
        One stat: the server calls it on the event loop for every file request, as a thread hop
        would cost more than the stat."""
        try:
            found = os.stat(path)
        except FileNotFoundError:
            return None
        return found if stat_is_file(found.st_mode) else None

    def open_cached(self, project: str, filename: str) -> tuple[int, int] | None:
        """A cached file opened for reading: (descriptor, size); None when it is not cached."""
        try:
            fd = os.open(self.path(project, filename), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        return fd, os.fstat(fd).st_size

    def entry(self, key: Key) -> CachedEntry | None:
        """A cached file's size and last use as the file system has them, or None when it is gone."""
        try:
            stat = os.stat(self.path(*key))
        except FileNotFoundError:
            return None
        return CachedEntry(key, stat.st_size, max(stat.st_atime, stat.st_mtime))

    # Downloads in progress -------------------------------------------------------------------

    def part_path(self, project: str, filename: str) -> Path:
        """Where ``filename`` is downloaded to: one name per file, so every server process finds
        the download in progress and follows it instead of fetching the file again."""
        digest = hashlib.sha256(f"{project}/{filename}".encode()).hexdigest()[:32]
        return self.temp_dir / f"{TEMP_PREFIX}part-{digest}"

    def claim(self, project: str, filename: str) -> Part | None:
        """The part file, empty and exclusively locked for writing; None when another process is
        downloading it. The lock (flock on the part file) lasts until ``commit`` or ``discard``.
        """
        part = self.part_path(project, filename)
        while True:
            fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            read_fd = _open_same(part, fd)
            if read_fd is not None:
                os.ftruncate(fd, 0)  # a part file left by a crashed writer starts over
                return Part(fd, read_fd)
            os.close(fd)  # renamed into the cache or removed meanwhile: look again

    def commit(self, part: Part, project: str, filename: str) -> Path:
        """fsync the finished download and rename it into place; returns the final path.

        The lock is released only after the rename, so another process that then takes it finds
        the file in the cache; when the commit fails, the part file is removed first.
        ``part.read_fd`` stays open: it belongs to the readers.
        """
        part_path = self.part_path(project, filename)
        try:
            os.fsync(part.fd)
            final = self.path(project, filename)
            final.parent.mkdir(parents=True, exist_ok=True)
            move_into_place(part_path, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                part_path.unlink()
            raise
        finally:
            os.close(part.fd)
        return final

    def discard(self, part: Part, project: str, filename: str) -> None:
        """Remove a failed download, then release its lock (``part.read_fd`` stays open)."""
        try:
            with contextlib.suppress(FileNotFoundError):
                self.part_path(project, filename).unlink()
        finally:
            os.close(part.fd)

    def sweep(self, older_than_s: float = 3600.0) -> int:
        """Remove part files crashed writers left: nobody holds their lock and they are older than
        ``older_than_s`` (a younger one may be between a writer's open and its lock). A locked one
        is a download in progress, however long it runs. Returns how many went."""
        removed = 0
        cutoff = time.time() - older_than_s
        for path in self.temp_dir.glob(f"{TEMP_PREFIX}*"):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                if os.fstat(fd).st_mtime < cutoff and not _locked(fd):
                    path.unlink(missing_ok=True)
                    removed += 1
            finally:
                os.close(fd)
        return removed

    def open_part(self, project: str, filename: str) -> int | None:
        """The part file another process is writing, opened for reading; None when there is none
        or nobody holds its lock (not yet locked, or left by a failed or crashed writer)."""
        try:
            fd = os.open(self.part_path(project, filename), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        if not _locked(fd):
            os.close(fd)
            return None
        return fd

    def part_state(self, fd: int, project: str, filename: str) -> PartState:
        """How the part file open as ``fd`` stands: identity, not paths, decides completion (a
        retry creates a new part file under the same name; only a commit renames *this* one)."""
        writing = _locked(fd)  # before the size: once unlocked, the size is final
        own = os.fstat(fd)
        committed = False
        if not writing:
            with contextlib.suppress(FileNotFoundError):
                final = os.stat(self.path(project, filename))
                committed = (final.st_ino, final.st_dev) == (own.st_ino, own.st_dev)
        return PartState(own.st_size, writing, committed)

    # Small files, listing, removal ----------------------------------------------------------

    def store(self, project: str, filename: str, data: bytes) -> Path:
        """Put a small file made here (a wheel's extracted core metadata) into the cache, atomically."""
        final = self.path(project, filename)
        final.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(final, data)
        return final

    def read(self, project: str, filename: str) -> bytes | None:
        """A cached file's bytes (for small files only), or None when it is not cached."""
        try:
            return self.path(project, filename).read_bytes()
        except FileNotFoundError:
            return None

    def scan(self) -> list[CachedEntry]:
        """Every cached file with its size and last use (one stat each; at start-up and in the CLI)."""
        entries: list[CachedEntry] = []
        if not self.root.is_dir():
            return entries
        for project_dir in self.root.iterdir():
            if not project_dir.is_dir():
                continue
            for path in project_dir.iterdir():
                if path.name.startswith(TEMP_PREFIX):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    stat = path.stat()
                    entries.append(CachedEntry((project_dir.name, path.name), stat.st_size,
                                               max(stat.st_atime, stat.st_mtime)))
        return entries

    def remove(self, keys: Iterable[Key]) -> int:
        """Delete cached files (readers holding them open keep reading); returns bytes freed."""
        freed = 0
        for project, filename in keys:
            path = self.path(project, filename)
            with contextlib.suppress(FileNotFoundError):
                freed += path.stat().st_size
                path.unlink()
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # only when it was the project's last file
        return freed


def _open_same(path: Path, fd: int) -> int | None:
    """``path`` opened for reading when it is still the file open as ``fd``, else None."""
    try:
        read_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    mine, found = os.fstat(fd), os.fstat(read_fd)
    if (mine.st_ino, mine.st_dev) == (found.st_ino, found.st_dev):
        return read_fd
    os.close(read_fd)
    return None


def _locked(fd: int) -> bool:
    """Whether some process holds the exclusive lock of the file open as ``fd``."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False
