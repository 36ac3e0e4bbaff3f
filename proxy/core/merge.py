"""Which source answers for a project name, and the merged project list (dependency confusion)."""

from __future__ import annotations

import enum
from collections.abc import Iterable

from proxy.core.names import is_valid_project_name, matches_any, normalize


class Source(enum.Enum):
    """Where a project's pages and files come from. Value: the X-Proxy-Source header's."""

    PRIVATE = "private"
    UPSTREAM = "upstream"
    MERGED = "merged"  # the root list: private names and upstream's
    NONE = "none"  # reserved for private use, or upstream switched off: 404 until uploaded


class CacheState(enum.Enum):
    """How a cached upstream answer was obtained. Value: the X-Proxy-Cache header's."""

    HIT = "hit"  # fresh in the cache, upstream not asked
    MISS = "miss"  # fetched from upstream now
    REVALIDATED = "revalidated"  # upstream said 304
    STALE = "stale"  # upstream failed, was too slow, or is not asked (open circuit): an older copy


def source_for(name: str, *, is_private: bool, reserved: Iterable[str], upstream_enabled: bool) -> Source:
    """A private name shadows upstream entirely; a reserved one is never looked up upstream."""
    if is_private:
        return Source.PRIVATE
    if not upstream_enabled or matches_any(name, reserved):
        return Source.NONE
    return Source.UPSTREAM


def project_names(private: Iterable[str], public: Iterable[str], reserved: Iterable[str]) -> list[str]:
    """Private names plus upstream's, one per normalised name, private spelling first, sorted.

    Upstream names matching a reserved pattern are left out: they would only answer 404. So are
    upstream names that are not valid project names (STANDARDS A2): the root page links each name
    (issue 12 L3).
    """
    reserved = tuple(reserved)
    chosen: dict[str, str] = {}
    for name in private:
        chosen.setdefault(normalize(name), name)
    for name in public:
        if not is_valid_project_name(name):
            continue
        key = normalize(name)
        if key not in chosen and not matches_any(key, reserved):
            chosen[key] = name
    return [chosen[key] for key in sorted(chosen)]
