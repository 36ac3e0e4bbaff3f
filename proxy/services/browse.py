"""What the web interface shows of the upstream caches, read without asking upstream anything.

The file cache's usage table belongs to the event loop: ``cached_keys`` copies it there (one list
copy, no Python-level loop); the functions over that copy are O(cached files): run them in the
executor, as the interface's view builders are.
"""

from __future__ import annotations

from collections.abc import Iterable

from proxy.filecache import Key
from proxy.services.catalog import Upstreams


def cached_keys(upstreams: Upstreams | None) -> list[Key]:
    """(project, filename) of every cached file, as of now; empty with upstream switched off."""
    return upstreams.files.usage.keys() if upstreams is not None else []


def cached_projects(keys: Iterable[Key]) -> set[str]:
    """Projects with at least one cached file."""
    return {project for project, _ in keys}


def cached_files(keys: Iterable[Key], name: str) -> frozenset[str]:
    """Filenames of ``name`` (normalised) held in the file cache."""
    return frozenset(filename for project, filename in keys if project == name)
