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
from pathlib import Path
from typing import BinaryIO

from proxy.atomic import TEMP_PREFIX, move_into_place
from proxy.names import check_safe_filename


class FileCache:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "cache" / "files"
        self.temp_dir = data_dir / "cache" / "tmp"

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

    @staticmethod
    def discard(temp: Path, handle: BinaryIO) -> None:
        handle.close()
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
