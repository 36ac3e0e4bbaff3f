"""Crash-safe file writes: temp file in the destination directory, fsync, rename, fsync dir."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

TEMP_PREFIX = ".tmp-"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that readers see either the old or the new content.

    OSError (ENOSPC, EDQUOT, EIO) from any step leaves ``path`` as it was and no temp file; it
    names ``path`` when the OS named no file (a failed write or fsync). The bytes go through
    ``os.write`` itself: where the OS reports a full disk, and where a test can make it do so."""
    import tempfile  # here, not above: the supervisor imports TEMP_PREFIX and must stay small (issue 16)

    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)
        raise
    fsync_dir(path.parent)


def move_into_place(source: Path, destination: Path) -> None:
    """Rename an already fsynced file into its final place and persist the directory entry."""
    os.replace(source, destination)
    fsync_dir(destination.parent)


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock shared by every process (server workers and the CLI)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def sweep_temp_files(directory: Path, older_than_s: float = 3600.0) -> int:
    """Remove temp files a crash left behind; young ones may belong to a live writer."""
    removed = 0
    cutoff = time.time() - older_than_s
    for path in directory.rglob(f"{TEMP_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed
