"""Rendered descriptions kept on disk, so a restart (or another worker) does not render them again.

Layout: ``<data_dir>/cache/descriptions/<key[:2]>/<key>.html`` holds the rendered HTML of the
description whose ``readme.description_key`` is ``key``, after a first line with the sha256 of
the HTML; ``<key>.<budget>.failed`` records that rendering it ran out of that budget (its text: which part).
A cache, safe to delete: written by rename without fsync, and checked on reading against the
digest it carries, so a file torn by a crash is ignored and rendered again. Every call blocks;
the server runs them in its executor.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

from proxy.storage.atomic import TEMP_PREFIX, sweep_temp_files

_KEY = re.compile(r"^[0-9a-f]{64}$")
_BUDGET = re.compile(r"^[0-9a-z_-]+$")


class RenderedDescriptions:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "cache" / "descriptions"

    def _path(self, key: str, suffix: str) -> Path:
        if not _KEY.match(key):  # keys become paths: only our own hex digests
            raise ValueError(f"not a description key: {key!r}")
        return self.root / key[:2] / f"{key}{suffix}"

    def read(self, key: str) -> str | None:
        """The HTML stored for ``key``; None when absent or torn."""
        try:
            data = self._path(key, ".html").read_bytes()
        except FileNotFoundError:
            return None
        digest, _, body = data.partition(b"\n")
        if hashlib.sha256(body).hexdigest().encode() != digest:
            return None
        return body.decode("utf-8")

    def write(self, key: str, html: str) -> None:
        body = html.encode("utf-8")
        self._replace(self._path(key, ".html"), hashlib.sha256(body).hexdigest().encode() + b"\n" + body)

    def failure(self, key: str, budget: str) -> str | None:
        """Why rendering ``key`` within ``budget`` (a ``Budget.tag``) failed before; None: it did not."""
        try:
            return self._path(key, f".{_checked(budget)}.failed").read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return None

    def mark_failed(self, key: str, budget: str, reason: str) -> None:
        self._replace(self._path(key, f".{_checked(budget)}.failed"), reason.encode("utf-8"))

    def sweep(self) -> int:
        """Remove temp files a crash left behind (at start-up); the number removed."""
        return sweep_temp_files(self.root) if self.root.is_dir() else 0

    @staticmethod
    def _replace(final: Path, data: bytes) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.parent / f"{TEMP_PREFIX}{os.urandom(6).hex()}"
        try:
            temp.write_bytes(data)
            os.replace(temp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise


def _checked(budget: str) -> str:
    if not _BUDGET.match(budget):
        raise ValueError(f"not a budget tag: {budget!r}")
    return budget
