"""What the web interface shows of the upstream caches, read without asking upstream anything.

The file cache's figures come from the ledger every server process shares, so each process
shows the same (``cached_keys`` reads it in the ledger's own thread); the functions over that
list are O(cached files): run them in the executor, as the interface's view builders are.
"""

from __future__ import annotations

from collections.abc import Iterable

from proxy.repository.upstream import Upstreams
from proxy.storage.upstream_files import Key


async def cached_keys(upstreams: Upstreams | None) -> list[Key]:
    """(project, filename) of every cached file, as of now; empty with upstream switched off."""
    return await upstreams.files.usage.keys() if upstreams is not None else []


async def cached_bytes(upstreams: Upstreams | None) -> int:
    """Bytes of every cached file, as of now; 0 with upstream switched off."""
    return (await upstreams.files.usage.totals()).bytes if upstreams is not None else 0


def cached_projects(keys: Iterable[Key]) -> set[str]:
    """Projects with at least one cached file."""
    return {project for project, _ in keys}


def cached_files(keys: Iterable[Key], name: str) -> frozenset[str]:
    """Filenames of ``name`` (normalised) held in the file cache."""
    return frozenset(filename for project, filename in keys if project == name)
