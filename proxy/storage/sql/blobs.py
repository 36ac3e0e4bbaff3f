"""Where the SQL private store keeps the bytes its rows list: a small protocol, and the local
directory that implements it (``proxy.storage.objectblobs.ObjectBlobs``, the object store of the
shared mode, is the other).

The database row is the commit: a blob that no row lists is never served, so a crash between
placing a blob and committing its row leaves only garbage, never a listed file without bytes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Container, Iterable
from pathlib import Path
from typing import Protocol

from proxy.core.models import StoredFile
from proxy.core.names import check_safe_filename, normalize
from proxy.storage.atomic import move_into_place, write_atomic


class Blobs(Protocol):
    """The bytes of private distributions and of their core metadata (PEP 658). Every method
    blocks (file or network I/O): the server calls them in its executor.

    ``content_addressed``: blobs are keyed by their sha256, so the same bytes listed by two
    projects are one blob; the SQL store then deletes only what no row lists any more, and
    serialises that with the commits that may list those bytes again."""

    @property
    def content_addressed(self) -> bool: ...

    def prepare(self) -> None:
        """Create what the store needs before its first use."""

    def upload(self, stored: StoredFile, staged: Path, metadata: bytes) -> None:
        """Before the transaction that lists the file, without its project's lock: put the bytes
        where they take long to put (an object store, over the network), verified against
        ``stored``'s sha256 and size. ``staged`` stays. Nothing to do for a local directory."""

    def place(self, project: str, stored: StoredFile, staged: Path, metadata: bytes) -> None:
        """In the transaction that lists the file, under its project's lock, last before the
        commit: make ``staged`` (fsynced) the bytes of ``stored`` in ``project``, and ``metadata``
        its ``.metadata``, replacing unlisted leftovers; ``staged`` may be consumed. On an
        exception nothing of this call is left placed and ``staged`` is still there."""

    def remove(self, project: str, files: Iterable[StoredFile], keep: Container[str] = frozenset()) -> None:
        """Delete the files and their metadata; missing ones are no error. A content-addressed
        store keeps the blobs whose sha256 is in ``keep`` (other rows still list them)."""


class LocalBlobs:
    """Blobs in a directory: ``<root>/<project>/<filename>`` and ``<filename>.metadata`` beside
    it, the layout of the filesystem store, so a file can be sent with sendfile."""

    content_addressed = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, project: str, filename: str) -> Path:
        """Where ``filename`` of ``project`` is (InvalidName for an unsafe name)."""
        return self._directory(project) / check_safe_filename(filename)

    def _directory(self, project: str) -> Path:
        return self.root / check_safe_filename(normalize(project))

    def upload(self, stored: StoredFile, staged: Path, metadata: bytes) -> None:
        """Nothing: a rename under the project's lock places the file (``place``)."""

    def place(self, project: str, stored: StoredFile, staged: Path, metadata: bytes) -> None:
        target = self.path(project, stored.filename)
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

    def remove(self, project: str, files: Iterable[StoredFile], keep: Container[str] = frozenset()) -> None:
        for stored in files:
            target = self.path(project, stored.filename)
            for path in (target, target.with_name(f"{target.name}.metadata")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        with contextlib.suppress(OSError):  # only when empty: gone with its last file
            self._directory(project).rmdir()
