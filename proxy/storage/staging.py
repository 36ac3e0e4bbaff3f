"""Uploaded files being received: written to a temp file and hashed on the way, never held in memory."""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from proxy.core.errors import UploadRejected


@dataclass
class StagedFile:
    """An uploaded file being written to a temp file, hashed on the way, never held in memory."""

    path: Path
    max_size: int
    size: int = 0
    _handle: BinaryIO | None = None
    _hashes: dict[str, Any] = field(default_factory=lambda: {
        "md5": hashlib.md5(usedforsecurity=False),
        "sha256": hashlib.sha256(),
        "blake2_256": hashlib.blake2b(digest_size=32),
    })

    def write(self, chunk: bytes) -> None:
        """Blocking: run in the executor."""
        self.size += len(chunk)
        if self.size > self.max_size:
            raise UploadRejected(
                f"File too large. Limit for this server is {self.max_size // (1024 * 1024)} MiB "
                f"({self.max_size} bytes).", status=400,
            )
        if self._handle is None:
            self._handle = open(self.path, "xb")
        self._handle.write(chunk)
        for hasher in self._hashes.values():
            hasher.update(chunk)

    def finish(self) -> None:
        """Blocking: flush and fsync, so a later rename is durable. UploadRejected (408) when the
        file was swept away meanwhile: the upload sat idle longer than staged uploads may."""
        if self._handle is None:
            self._handle = open(self.path, "xb")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        swept = os.fstat(self._handle.fileno()).st_nlink == 0
        self._handle.close()
        if swept:
            raise UploadRejected("The upload stalled for longer than this server keeps a partial upload; "
                                 "nothing was stored. Upload again.", status=408)

    def discard(self) -> None:
        """Blocking: close and delete, whatever state it is in."""
        if self._handle is not None and not self._handle.closed:
            self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def digests(self) -> dict[str, str]:
        return {name: hasher.hexdigest() for name, hasher in self._hashes.items()}
