"""What the web interface shows of the upstream caches, read without asking upstream anything."""

from __future__ import annotations

from proxy.services.catalog import Upstreams


def cached_projects(upstreams: Upstreams) -> set[str]:
    """Projects with at least one cached file (from the in-memory usage table: no disk scan)."""
    return {project for project, _ in upstreams.files.usage.keys()}


def cached_files(upstreams: Upstreams, name: str) -> frozenset[str]:
    """Filenames of ``name`` (normalised) held in the file cache."""
    return frozenset(filename for project, filename in upstreams.files.usage.keys() if project == name)
