"""View model of the project list: private and cached projects, searched and paged."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from proxy.core.names import matches_any, normalize
from proxy.ui.views import CACHED, PRIVATE, RESERVED, Site

PER_PAGE = 50


@dataclass(frozen=True, slots=True)
class Listed:
    name: str  # as displayed
    key: str  # normalised (PEP 503)
    marker: str  # PRIVATE, CACHED or RESERVED
    url: str


def listed_projects(site: Site, private: Iterable[str], cached: Iterable[str],
                    reserved: Sequence[str]) -> list[Listed]:
    """Private projects (private wins over everything), then cached ones; a cached name that is
    now reserved is marked so (it is no longer served). Sorted by normalised name."""
    found: dict[str, Listed] = {}
    for name in private:
        key = normalize(name)
        found.setdefault(key, Listed(name, key, PRIVATE, site.project_link(key)))
    for name in cached:
        key = normalize(name)
        marker = RESERVED if matches_any(key, reserved) else CACHED
        found.setdefault(key, Listed(name, key, marker, site.project_link(key)))
    return [found[key] for key in sorted(found)]


def search(projects: Iterable[Listed], query: str) -> list[Listed]:
    """Substring match on PEP 503 normalised names: "My_Pkg" finds "my-pkg"."""
    needle = normalize(query.strip()) if query.strip() else ""
    return [p for p in projects if needle in p.key]


def page_number(text: str | None) -> int:
    """The ``page`` query parameter; anything but a positive integer is page 1."""
    return int(text) if text and text.isdigit() and int(text) > 0 else 1


@dataclass(frozen=True, slots=True)
class ProjectsView:
    site: Site
    query: str
    projects: tuple[Listed, ...]
    total: int
    page: int
    pages: int
    first: int  # 1-based position of the first shown
    prev_url: str | None
    next_url: str | None
    reserved: tuple[str, ...]
    query_reserved: bool  # the query names a reserved project that has no release yet


def projects_view(site: Site, everything: Sequence[Listed], query: str, page: int,
                  reserved: Sequence[str], per_page: int = PER_PAGE) -> ProjectsView:
    found = search(everything, query)
    pages = max(1, math.ceil(len(found) / per_page))
    page = min(page, pages)
    start = (page - 1) * per_page

    def url(number: int) -> str:
        params = {**({"q": query} if query else {}), **({"page": str(number)} if number > 1 else {})}
        return site.link("/-/projects") + (f"?{urlencode(params)}" if params else "")

    key = normalize(query.strip()) if query.strip() else ""
    query_reserved = bool(key) and matches_any(key, reserved) and all(p.key != key for p in found)
    return ProjectsView(
        site, query, tuple(found[start:start + per_page]), len(found), page, pages, start + 1,
        url(page - 1) if page > 1 else None, url(page + 1) if page < pages else None,
        tuple(reserved), query_reserved,
    )
