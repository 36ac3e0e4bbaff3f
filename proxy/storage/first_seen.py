"""When this server first listed each upstream release: the cooldown's clock where upstream gives
no upload-time (PEP 700). Kept in diskcache (SQLite) so every worker process and every restart
agrees; the first writer wins. Every call blocks: run it in the executor."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import diskcache

from proxy.storage.upstream_pages import SQLITE_MEMORY


class FirstSeen:
    def __init__(self, directory: Path) -> None:
        self._cache = diskcache.Cache(str(directory), size_limit=256 * 1024**2, eviction_policy="least-recently-stored",
                                      **SQLITE_MEMORY)

    def moments(self, project: str, versions: Iterable[str], now: float) -> dict[str, float]:
        """For each version of ``project`` (normalised), when it was first seen (seconds since the
        epoch): ``now`` for a version never seen before, recorded."""
        found = {}
        for version in versions:
            key = f"{project}=={version}"
            self._cache.add(key, now)  # only when absent: atomic across processes
            found[version] = float(self._cache.get(key, now))
        return found

    def close(self) -> None:
        self._cache.close()
