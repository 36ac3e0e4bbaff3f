"""Cached public files on disk, one real file each, so they are served with sendfile and Range.

Layout under ``<data_dir>/cache``::

    files/<project>/<filename>            a verified upstream distribution or .metadata file
    tmp/.tmp-<random>                     downloads in progress; renamed into files/ when verified

A file is only ever renamed into ``files/`` after its hash matched the listing, so whatever is
there is complete. Every call blocks; the server runs them in its executor.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from proxy.atomic import TEMP_PREFIX, move_into_place
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

    def load(self, entries: Iterable[CachedEntry]) -> None:
        for entry in sorted(entries, key=lambda e: e.last_used):
            self.record(entry.key, entry.size)

    def record(self, key: Key, size: int) -> None:
        self.forget(key)
        self._sizes[key] = size
        self.total_bytes += size

    def used(self, key: Key) -> None:
        if key in self._sizes:
            self._sizes.move_to_end(key)

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

    def cached(self, project: str, filename: str) -> Path | None:
        path = self.path(project, filename)
        return path if path.is_file() else None

    def open_temp(self) -> tuple[Path, BinaryIO]:
        path = self.temp_dir / f"{TEMP_PREFIX}download-{os.urandom(8).hex()}"
        return path, open(path, "xb")

    def commit(self, temp: Path, handle: BinaryIO, project: str, filename: str) -> Path:
        """fsync the finished download and rename it into place; returns the final path."""
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        final = self.path(project, filename)
        final.parent.mkdir(parents=True, exist_ok=True)
        move_into_place(temp, final)
        return final

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

    @staticmethod
    def discard(temp: Path, handle: BinaryIO) -> None:
        handle.close()
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
