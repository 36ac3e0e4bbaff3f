"""The blobs of the shared mode's private projects in the object store (issue 14): content-addressed
(``sha256/ab/cd/<sha256>``, for distributions and their ``.metadata`` alike), so the row that lists
a file names its blob, and a blob is put and verified before any row lists it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Container, Iterable, Iterator
from pathlib import Path

from proxy.core.models import StoredFile
from proxy.storage.atomic import TEMP_PREFIX
from proxy.storage.objects import ObjectStore, blob_key
from proxy.storage.sql.writes import digests


class ObjectBlobs:
    """``Blobs`` (``proxy.storage.sql.blobs``) in ``objects``; ``temp_dir`` (this host's disk)
    holds a ``.metadata`` for the moment it is put. Blocking: for executor threads and the CLI."""

    content_addressed = True

    def __init__(self, objects: ObjectStore, temp_dir: Path) -> None:
        self.objects = objects
        self.temp_dir = temp_dir

    def prepare(self) -> None:
        self.temp_dir.mkdir(parents=True, exist_ok=True)

    def upload(self, stored: StoredFile, staged: Path, metadata: bytes) -> None:
        """Put the distribution and its metadata, each verified as it goes (ObjectIntegrityError,
        nothing left under the key, when the bytes are not what ``stored`` says);
        ObjectStoreUnavailable when the store fails."""
        self.objects.put_file(blob_key(stored.sha256), staged, stored.sha256, stored.size)
        if stored.metadata_sha256 is not None:
            self.put_bytes(metadata, stored.metadata_sha256)

    def put_bytes(self, data: bytes, sha256: str) -> None:
        """Put ``data`` as the blob of ``sha256`` (verified), through a file of ``temp_dir``."""
        with self._spooled(data) as path:
            self.objects.put_file(blob_key(sha256), path, sha256, len(data))

    def place(self, project: str, stored: StoredFile, staged: Path, metadata: bytes) -> None:
        """Under the blobs' locks, make sure ``upload``'s blobs are still there (a removal of the
        same bytes from another project may have deleted them meanwhile); put them again if not."""
        if self.objects.stat(blob_key(stored.sha256)) != stored.size:
            self.objects.put_file(blob_key(stored.sha256), staged, stored.sha256, stored.size)
        digest = stored.metadata_sha256
        if digest is not None and self.objects.stat(blob_key(digest)) != len(metadata):
            self.put_bytes(metadata, digest)

    def remove(self, project: str, files: Iterable[StoredFile], keep: Container[str] = frozenset()) -> None:
        for digest in sorted(digests(files)):
            if digest not in keep:
                self.objects.remove(blob_key(digest))

    @contextlib.contextmanager
    def _spooled(self, data: bytes) -> Iterator[Path]:
        path = self.temp_dir / f"{TEMP_PREFIX}metadata-{os.urandom(8).hex()}"
        try:
            path.write_bytes(data)
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

