"""Cached public files on disk, one real file each, so they are served with sendfile and Range.

Layout under ``<data_dir>/cache``::

    files/<project>/<filename>            a verified upstream distribution or .metadata file
    tmp/.tmp-part-<hash of the key>       downloads in progress, locked by their writer (flock);
                                          renamed into files/ when verified

A file is only ever renamed into ``files/`` after its hash matched the listing, so whatever is
there is complete. Every call blocks; the server runs them in its executor.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG as stat_is_file
from typing import BinaryIO

from proxy.atomic import TEMP_PREFIX, move_into_place, write_atomic
from proxy.names import check_safe_filename

Key = tuple[str, str]  # (project, filename)


@dataclass(frozen=True, slots=True)
class CachedEntry:
    key: Key
    size: int
    last_used: float  # unix time: the later of the file's atime and mtime


class CacheUsage:
    """Sizes of the cached files in least-recently-used order, and which are being served.

    In memory only, rebuilt from a scan at start-up (access times survive a restart as the
    files' atime, where the file system keeps it). Not thread-safe: the event loop is its user.
    """

    def __init__(self) -> None:
        self._sizes: OrderedDict[Key, int] = OrderedDict()
        self._pins: Counter[Key] = Counter()
        self.total_bytes = 0

    def __len__(self) -> int:
        return len(self._sizes)

    def keys(self) -> list[Key]:
        """Every counted file, least recently used first."""
        return list(self._sizes)

    def load(self, entries: Iterable[CachedEntry]) -> None:
        for entry in sorted(entries, key=lambda e: e.last_used):
            self.record(entry.key, entry.size)

    def record(self, key: Key, size: int) -> None:
        self.forget(key)
        self._sizes[key] = size
        self.total_bytes += size

    def used(self, key: Key, size: int) -> None:
        """A cache hit; a file this process did not know (another process cached it) is counted."""
        if key in self._sizes:
            self._sizes.move_to_end(key)
        else:
            self.record(key, size)

    def forget(self, key: Key) -> None:
        self.total_bytes -= self._sizes.pop(key, 0)

    @contextlib.contextmanager
    def pinned(self, key: Key) -> Iterator[None]:
        """While held, ``key`` is never chosen for eviction (it is being served)."""
        self._pins[key] += 1
        try:
            yield
        finally:
            self._pins[key] -= 1
            if not self._pins[key]:
                del self._pins[key]

    def evict(self, max_size: int | None) -> list[Key]:
        """Forget least recently used, unpinned files until at most ``max_size`` bytes remain;
        returns them, for the caller to delete."""
        if max_size is None:
            return []
        chosen = []
        for key in list(self._sizes):
            if self.total_bytes <= max_size:
                break
            if self._pins[key]:
                continue
            chosen.append(key)
            self.forget(key)
        return chosen


class FileCache:
    def __init__(self, data_dir: Path, max_size: int | None = None) -> None:
        self.root = data_dir / "cache" / "files"
        self.temp_dir = data_dir / "cache" / "tmp"
        self.max_size = max_size
        self.usage = CacheUsage()

    def prepare(self) -> None:
        for directory in (self.root, self.temp_dir):
            directory.mkdir(parents=True, exist_ok=True)

    def path(self, project: str, filename: str) -> Path:
        check_safe_filename(project)
        check_safe_filename(filename)
        return self.root / project / filename

    def cached_size(self, project: str, filename: str) -> int | None:
        """The size of a cached file, or None when it is not cached. One stat: the server calls it on
        the event loop for every file request, as a thread hop would cost more than the stat."""
        try:
            stat = os.stat(self.path(project, filename))
        except FileNotFoundError:
            return None
        return stat.st_size if stat_is_file(stat.st_mode) else None

    def part_path(self, project: str, filename: str) -> Path:
        """Where ``filename`` is downloaded to: one name per file, so every server process finds
        the download in progress and follows it instead of fetching the file again."""
        digest = hashlib.sha256(f"{project}/{filename}".encode()).hexdigest()[:32]
        return self.temp_dir / f"{TEMP_PREFIX}part-{digest}"

    def claim(self, project: str, filename: str) -> BinaryIO | None:
        """The part file, empty and exclusively locked for writing; None when another process is
        downloading it. The lock (flock on the part file) lasts until the handle is closed.
        """
        part = self.part_path(project, filename)
        while True:
            fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            try:
                current = os.stat(part).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                os.ftruncate(fd, 0)  # a part file left by a crashed writer starts over
                return os.fdopen(fd, "wb")
            os.close(fd)  # renamed into the cache or removed meanwhile: look again

    def writer_active(self, project: str, filename: str) -> bool:
        """Whether some process holds the part file's lock (is downloading it now)."""
        try:
            fd = os.open(self.part_path(project, filename), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def commit(self, handle: BinaryIO, project: str, filename: str) -> Path:
        """fsync the finished download and rename it into place; returns the final path.

        The handle is closed (the lock released) only after the rename, so another process that
        then takes the lock finds the file in the cache.
        """
        handle.flush()
        os.fsync(handle.fileno())
        final = self.path(project, filename)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            move_into_place(self.part_path(project, filename), final)
        finally:
            handle.close()
        return final

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

    def discard(self, handle: BinaryIO, project: str, filename: str) -> None:
        """Remove a failed download, then release its lock."""
        try:
            with contextlib.suppress(FileNotFoundError):
                self.part_path(project, filename).unlink()
        finally:
            handle.close()
