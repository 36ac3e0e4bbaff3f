"""Where the SQL private store keeps the bytes its rows list: a small protocol, and the local
directory that implements it (the object store of the shared mode is another implementation).

The database row is the commit: a blob that no row lists is never served, so a crash between
placing a blob and committing its row leaves only garbage, never a listed file without bytes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from proxy.core.names import check_safe_filename, normalize
from proxy.storage.atomic import move_into_place, write_atomic


class Blobs(Protocol):
    """The bytes of private distributions and of their core metadata (PEP 658). Every method
    blocks (file or network I/O): the server calls them in its executor."""

    def prepare(self) -> None:
        """Create what the store needs before its first use."""

    def place(self, project: str, filename: str, staged: Path, metadata: bytes) -> None:
        """Store ``staged`` (fsynced; consumed) as ``filename`` of ``project``, and its core
        ``metadata`` as ``<filename>.metadata``, replacing unlisted leftovers of those names.
        On an exception nothing of this call is left placed and ``staged`` is still there."""

    def remove(self, project: str, filenames: Iterable[str]) -> None:
        """Delete the files and their metadata; missing ones are no error."""


class LocalBlobs:
    """Blobs in a directory: ``<root>/<project>/<filename>`` and ``<filename>.metadata`` beside
    it, the layout of the filesystem store, so a file can be sent with sendfile."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, project: str, filename: str) -> Path:
        """Where ``filename`` of ``project`` is (InvalidName for an unsafe name)."""
        return self._directory(project) / check_safe_filename(filename)

    def _directory(self, project: str) -> Path:
        return self.root / check_safe_filename(normalize(project))

    def place(self, project: str, filename: str, staged: Path, metadata: bytes) -> None:
        target = self.path(project, filename)
        target.parent.mkdir(parents=True, exist_ok=True)
        metadata_path = target.with_name(f"{target.name}.metadata")
        try:
            write_atomic(metadata_path, metadata)
            move_into_place(staged, target)
        except BaseException:
            if not staged.exists() and target.exists():  # renamed, then the directory's fsync failed
                os.replace(target, staged)
            with contextlib.suppress(FileNotFoundError):
                metadata_path.unlink()
            raise

    def remove(self, project: str, filenames: Iterable[str]) -> None:
        for filename in filenames:
            target = self.path(project, filename)
            for path in (target, target.with_name(f"{target.name}.metadata")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        with contextlib.suppress(OSError):  # only when empty: gone with its last file
            self._directory(project).rmdir()
