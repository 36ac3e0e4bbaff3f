"""What every page's view model shares: where the site is, and how sizes and times read.

The view models themselves are plain data built by pure functions, one module per page kind:
``views_home`` (home, help), ``views_list`` (the project list), ``views_project`` (one project,
not found) and ``views_releases`` (a project's releases and their files).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

PRIVATE, CACHED, RESERVED = "private", "cached", "reserved"  # where a project comes from


@dataclass(frozen=True, slots=True)
class Site:
    """Where clients reach this server: ``base_url`` for snippets, ``root`` to prefix links."""

    base_url: str  # absolute, no trailing slash
    root: str  # the path part of base_url: "" or "/prefix"

    @property
    def index_url(self) -> str:
        return f"{self.base_url}/pypi/simple/"

    @property
    def upload_url(self) -> str:
        return f"{self.base_url}/pypi"

    def link(self, path: str) -> str:
        return self.root + path

    def project_link(self, name: str) -> str:
        return self.link(f"/-/projects/{quote(name)}/")


def site_for(public_url: str | None, scheme: str, host: str) -> Site:
    """``[server] public_url`` when configured (behind a reverse proxy), else the request's own."""
    base = (public_url or f"{scheme}://{host}").rstrip("/")
    return Site(base, urlsplit(base).path.rstrip("/"))


def human_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def when(moment: datetime | float | None) -> str:
    """UTC, to the second: "2024-05-01 12:34:56 UTC"; "-" when unknown."""
    if moment is None:
        return "-"
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(moment: float | None, now: float) -> str:
    if moment is None:
        return ""
    seconds = max(0, int(now - moment))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def percent(part: int | None, whole: int | None) -> int | None:
    if part is None or not whole:
        return None
    return min(100, round(100 * part / whole))
