"""A replica's local tier of private blobs (issue 14, stream mode): verified copies of objects
from the object store in ``data_dir/cache/blobs/<ab>/<sha256>``, so a file asked for again is
sent from the disk with sendfile instead of streamed from the store through Python.

Blobs are content-addressed and immutable, so a copy is valid for as long as it exists. A copy
is written by ``Fill``: a temp file in the blob's directory, hashed as it is written, and renamed
into place only when its sha256 and size are the ones asked for (``proxy.storage.atomic``). At
serve time only the size is checked (a copy of another size is dropped); the bytes are trusted.

The tier is bounded by ``max_size`` bytes: when a fill takes it over the bound (and at start-up)
the least recently used copies (by access time, which ``find`` sets) are removed until it is at
most 90% of it. Every method blocks (disk): call it through the executor.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from pathlib import Path

import structlog

from proxy.core.errors import ObjectIntegrityError
from proxy.storage.atomic import TEMP_PREFIX, move_into_place, sweep_temp_files

log = structlog.get_logger(__name__)
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
LOW_WATER = 0.9  # a sweep leaves the tier at most this share of its bound


class Fill:
    """A copy being written: ``write`` the blob's bytes in order, then ``commit`` (verifies and
    renames into place; ObjectIntegrityError and no copy when the bytes are not the blob's) or
    ``abort``. Blocking."""

    def __init__(self, tier: LocalBlobs, sha256: str, size: int) -> None:
        self._tier = tier
        self.sha256, self.size = sha256, size
        self._path = tier.path_of(sha256)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self._path.parent)
        self._file = os.fdopen(fd, "wb")
        self._temp = Path(temp)
        self._hash = hashlib.sha256()
        self._written = 0

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; ObjectIntegrityError (and the fill aborted) past the blob's size."""
        self._written += len(chunk)
        if self._written > self.size:
            self.abort()
            raise ObjectIntegrityError(str(self._path), (self.sha256, self.size), (None, self._written))
        self._hash.update(chunk)
        self._file.write(chunk)

    def commit(self) -> Path:
        """The copy's path once verified (sha256 and size) and in place; ObjectIntegrityError otherwise."""
        try:
            if self._written != self.size or self._hash.hexdigest() != self.sha256:
                found = (self._hash.hexdigest(), self._written)
                raise ObjectIntegrityError(str(self._path), (self.sha256, self.size), found)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            move_into_place(self._temp, self._path)
        except BaseException:
            self.abort()
            raise
        self._tier.added(self.size)
        return self._path

    def abort(self) -> None:
        """Drop the temp file (idempotent)."""
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._temp.unlink()


class LocalBlobs:
    """The local tier under ``root`` (``data_dir/cache/blobs``), at most ``max_size`` bytes."""

    def __init__(self, root: Path, max_size: int) -> None:
        self.root = root
        self.max_size = max_size
        self._used = 0  # bytes, as this process counts them; a sweep counts again from the disk

    def path_of(self, sha256: str) -> Path:
        """Where the copy of blob ``sha256`` (64 lower-case hex digits; ValueError otherwise) lives."""
        if not _DIGEST.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def find(self, sha256: str, size: int) -> Path | None:
        """The copy of blob ``sha256`` of ``size`` bytes, its access time set to now (the LRU
        order); None when there is none. A copy of another size is removed (logged)."""
        path = self.path_of(sha256)
        try:
            found = path.stat().st_size
        except FileNotFoundError:
            return None
        if found != size:
            log.error("local_blob_damaged", sha256=sha256, size=found, expected=size)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return None
        with contextlib.suppress(FileNotFoundError):
            os.utime(path, (time.time(), path.stat().st_mtime))
        return path

    def begin(self, sha256: str, size: int) -> Fill:
        """A new copy of blob ``sha256`` (``size`` bytes) to write."""
        return Fill(self, sha256, size)

    def added(self, size: int) -> None:
        """Count ``size`` more bytes; sweep when over the bound."""
        self._used += size
        if self._used > self.max_size:
            self.sweep()

    def start(self) -> None:
        """At start-up: remove crashed fills' temp files, count the tier, sweep when over."""
        if not self.root.is_dir():
            return
        sweep_temp_files(self.root)
        self.sweep()

    def sweep(self) -> int:
        """Remove the least recently used copies until the tier is at most ``LOW_WATER`` of its
        bound, when over it; the bytes removed."""
        copies = []
        for directory in (self.root.iterdir() if self.root.is_dir() else []):
            for path in directory.glob("[0-9a-f]" * 64):
                with contextlib.suppress(FileNotFoundError):
                    stat = path.stat()
                    copies.append((stat.st_atime, stat.st_size, path))
        used = sum(size for _, size, _ in copies)
        removed = 0
        if used > self.max_size:
            for _, size, path in sorted(copies, key=lambda c: c[0]):
                if used - removed <= self.max_size * LOW_WATER:
                    break
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += size
            log.info("local_blobs_swept", removed_bytes=removed, kept_bytes=used - removed)
        self._used = used - removed
        return removed

