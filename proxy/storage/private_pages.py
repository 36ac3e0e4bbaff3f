"""Rendered private pages kept on disk, so a restart (or another worker) does not render them again.

Layout: ``<data_dir>/cache/private-pages/<project>/<stamp of project.json>.<kind>.<digest>``, kinds
``json`` and ``html`` and their gzip copies ``json-gzip`` and ``html-gzip``. A page is
valid for exactly the index version whose stamp names it; older ones are removed when a newer
one is written. These are a cache: written by rename without fsync, and checked on reading
against the digest in their name, so a file torn by a crash is ignored and rendered again.
Every call blocks; the server runs them in its executor.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from proxy.core.names import check_safe_filename
from proxy.storage.atomic import TEMP_PREFIX


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


def _prefix(stamp_text: str, kind: str) -> str:
    return f"{stamp_text}.{kind}."


class RenderedPages:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "cache" / "private-pages"

    def read(self, project: str, stamp_text: str, kind: str) -> bytes | None:
        directory = self.root / check_safe_filename(project)
        prefix = _prefix(stamp_text, kind)
        try:
            names = [n for n in os.listdir(directory) if n.startswith(prefix)]
        except FileNotFoundError:
            return None
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                body = (directory / name).read_bytes()
                if _digest(body) == name[len(prefix):]:
                    return body
        return None

    def write(self, project: str, stamp_text: str, kind: str, body: bytes) -> None:
        directory = self.root / check_safe_filename(project)
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / f"{_prefix(stamp_text, kind)}{_digest(body)}"
        temp = directory / f"{TEMP_PREFIX}{os.urandom(6).hex()}"
        temp.write_bytes(body)
        os.replace(temp, final)
        for old in directory.iterdir():  # this kind's pages of older index versions
            if old != final and f".{kind}." in old.name and not old.name.startswith(TEMP_PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()
