"""The data directory checked before a command uses it, so a mistake is one clear line, not a
traceback from deep inside the first write."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from proxy.core.errors import DataDirUnusable
from proxy.oserrors import explain_os_error
from proxy.storage.atomic import TEMP_PREFIX

ELSEWHERE = "or choose another directory with --data-dir (or [storage] data_dir)"


def check_data_dir(path: Path, *, create: bool, write: bool) -> None:
    """Raise DataDirUnusable unless ``path`` can serve as the data directory.

    ``create``: make it and its parents when missing. ``write``: prove that a file can be
    written in it (a one-byte probe file, removed at once; its temp-file name lets a start-up
    sweep remove it after a crash). A directory that is missing and not to be created passes:
    the command then finds nothing stored. Blocks (file-system calls): call before the event loop.
    """
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(mode):
            raise DataDirUnusable(str(path), f"{path} is a file, not a directory", f"move that file away, {ELSEWHERE}")
        with os.scandir(path):  # EACCES when it cannot be listed
            pass
        if write:
            _probe(path)
    except OSError as exc:
        reason, hint = explain_os_error(exc)
        raise DataDirUnusable(str(path), reason, f"{hint}, {ELSEWHERE}") from None


def _probe(directory: Path) -> None:
    """Write a byte in ``directory``; an OSError names the directory, not the probe file."""
    probe = directory / f"{TEMP_PREFIX}probe-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0")  # ENOSPC shows on the first byte, not on an empty file
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(directory)) from None
