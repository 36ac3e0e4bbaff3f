"""Open descriptors of served files, kept for reuse as nginx's ``open_file_cache`` keeps them: a
file asked for again within ``max_age`` seconds is sent without opening (or stating) it again.

Every file served is immutable once listed (a private distribution, a verified cached one), and
a descriptor keeps the bytes it was opened on even when the file is replaced or unlinked, so a
reused one always holds the bytes its key names. Keys are (path, version): the version names the
bytes the caller expects (the listed sha256 of a private file, the size and modification time of
a cached one), so a file replaced under the same name is opened afresh. ``max_age`` bounds how
long an evicted cached file's disk space stays held by a descriptor kept here; ``max_files``
bounds how many are kept (one more per request in flight that holds one).

Offsets are always explicit (``os.sendfile``, ``os.pread``): descriptors are shared by concurrent
responses, so nothing may rely on a file position. The cache is used from the event loop only;
opens on a miss and every close (the last close of an unlinked file frees its blocks) run in the
executor.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

MAX_FILES = 256
MAX_AGE_S = 10.0


def fitting(soft_limit: int) -> int:
    """How many files to keep open under an open-file limit of ``soft_limit``: MAX_FILES (the
    server raises its limit to make room for them, ``proxy.ops.server.connection_cap``), or an
    eighth of the limit where it could not be raised that far."""
    return max(0, min(MAX_FILES, soft_limit // 8))


@dataclass(eq=False, slots=True)
class OpenFile:
    """An open, regular, read-only file: ``size`` bytes, modified at ``mtime`` (unix seconds;
    ``mtime_ns`` in nanoseconds), as fstat saw it when opened. Usable while held (``OpenFiles.release``)."""

    key: tuple[str, Hashable]
    fd: int
    size: int
    mtime_ns: int
    opened_at: float
    users: int = 0
    retired: bool = False
    mode: str = field(default="rb")  # what loop.sendfile checks of a file object
    _last_modified: str | None = None

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9

    @property
    def last_modified(self) -> str:
        """``mtime`` as an HTTP-date (whole seconds, as RFC 9110 5.6.7 writes them), made once."""
        if self._last_modified is None:
            self._last_modified = formatdate(self.mtime_ns // 10**9, usegmt=True)
        return self._last_modified

    def fileno(self) -> int:
        """The descriptor (loop.sendfile takes any object with ``fileno``)."""
        return self.fd

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Nothing: loops' sendfile set the position after sending, but a shared descriptor's
        position means nothing here (every read is at an explicit offset), so it is left alone."""
        return offset


class OpenFiles:
    """A bounded LRU of open files (module docstring). ``acquire`` holds one, ``release`` lets it
    go; ``start`` begins the sweep that closes expired ones, ``close`` closes them all."""

    def __init__(self, executor: Executor, max_files: int = MAX_FILES, max_age: float = MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._executor = executor
        self.max_files = max_files
        self.max_age = max_age
        self._clock = clock
        self._entries: OrderedDict[tuple[str, Hashable], OpenFile] = OrderedDict()
        self._closing: set[asyncio.Future[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    async def acquire(self, path: Path, version: Hashable = None) -> OpenFile:
        """The file at ``path`` open, held until ``release``: reused when opened less than
        ``max_age`` seconds ago under the same ``version``, else opened in the executor.
        FileNotFoundError when there is no regular file at ``path``."""
        key = (str(path), version)
        entry = self._entries.get(key)
        if entry is not None:
            if self._clock() - entry.opened_at < self.max_age:
                self._entries.move_to_end(key)
                entry.users += 1
                return entry
            self._retire(self._entries.pop(key))
        loop = asyncio.get_running_loop()
        fd, size, mtime_ns = await loop.run_in_executor(self._executor, _open, key[0])
        entry = self._entries.get(key)  # another request may have opened it meanwhile
        if entry is not None and self._clock() - entry.opened_at < self.max_age:
            self._close_later(fd)
            self._entries.move_to_end(key)
        else:
            if entry is not None:
                self._retire(entry)
            # Held before anything is evicted: with max_files 0 it is itself, closed once released.
            entry = self._entries[key] = OpenFile(key, fd, size, mtime_ns, self._clock(), users=1)
            while len(self._entries) > self.max_files:
                self._retire(self._entries.popitem(last=False)[1])
            return entry
        entry.users += 1
        return entry

    def release(self, entry: OpenFile) -> None:
        """Done with ``entry``; it is closed now if it left the cache meanwhile."""
        entry.users -= 1
        if entry.retired and entry.users == 0:
            self._close_later(entry.fd)

    def forget(self, entry: OpenFile) -> None:
        """Take ``entry`` out of the cache (it is not the file its key names): the next request
        opens the file again; ``entry`` itself is closed once released."""
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
            self._retire(entry)

    def start(self) -> None:
        """Close expired files every ``max_age`` seconds, even when no request comes."""
        self._sweeper = asyncio.ensure_future(self._sweep_forever())

    def sweep(self) -> int:
        """Close the files opened ``max_age`` seconds ago or more; how many left the cache."""
        now = self._clock()
        expired = [key for key, entry in self._entries.items() if now - entry.opened_at >= self.max_age]
        for key in expired:
            self._retire(self._entries.pop(key))
        return len(expired)

    async def close(self) -> None:
        """Stop the sweep and close every file (at shutdown: none is held any more)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        while self._entries:
            self._retire(self._entries.popitem()[1])
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.max_age)
            self.sweep()

    def _retire(self, entry: OpenFile) -> None:
        entry.retired = True
        if entry.users == 0:
            self._close_later(entry.fd)

    def _close_later(self, fd: int) -> None:
        future = asyncio.get_running_loop().run_in_executor(self._executor, os.close, fd)
        self._closing.add(future)
        future.add_done_callback(self._closing.discard)


def _open(path: str) -> tuple[int, int, int]:
    """Blocking: (descriptor, size, mtime_ns) of the regular file at ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise FileNotFoundError(f"not a regular file: {path}")
    except BaseException:
        os.close(fd)
        raise
    return fd, found.st_size, found.st_mtime_ns
