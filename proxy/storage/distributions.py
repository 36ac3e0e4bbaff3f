"""A distribution's own core-metadata file, read out of the archive on disk within bounds
(``proxy.storage.archives`` for sdists, ``proxy.storage.wheelzip`` for wheels)."""

from __future__ import annotations

from pathlib import Path

from proxy.core.errors import UploadRejected
from proxy.core.names import SDIST, WHEEL
from proxy.storage import archives, wheelzip


def extract_metadata(path: Path, packagetype: str, strict: bool = False) -> bytes:
    """The raw core-metadata file of a distribution; UploadRejected when it is not a valid one.

    PEP 658 requires serving the archive's own file byte for byte, so nothing is rebuilt.
    Reading is bounded whatever the archive claims; ``strict`` holds a wheel to the upload rules
    too (sdists always are: only uploads are read here). Blocking: run it in an executor.
    """
    if packagetype == WHEEL:
        return wheelzip.wheel_metadata(path, strict)
    if packagetype == SDIST:
        return archives.sdist_metadata(path)
    raise UploadRejected(f"Unknown type of file {packagetype!r}.")
