"""What both simple-API formats say the same way, read once: the API version (PEP 629), the
project status (PEP 792) and lists of URLs (PEP 708), each resolved against the page."""

from __future__ import annotations

from typing import Any

from yarl import URL

from proxy.core.errors import InvalidUpstreamResponse
from proxy.core.urls import resolve


def check_api_version(version: Any) -> None:
    """PEP 629: a client must refuse an unknown major version (a missing one means 1.0)."""
    if version is None:
        return
    major = str(version).split(".", 1)[0]
    if major != "1":
        raise InvalidUpstreamResponse(f"upstream speaks simple API version {version}, only 1.x is understood")


PROJECT_STATUSES = ("active", "archived", "quarantined", "deprecated")  # PEP 792


def project_status(status: Any, reason: Any) -> dict[str, str | None]:
    """PEP 792: a known status (unknown values are dropped: clients treat absence as active)."""
    if not isinstance(status, str) or status.lower() not in PROJECT_STATUSES:
        return {"status": None, "status_reason": None}
    return {"status": status.lower(), "status_reason": reason if isinstance(reason, str) and reason else None}


def optional_url(base: URL, value: Any) -> str | None:
    """A URL resolved against ``base``; None when absent, empty or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return str(resolve(base, value)[0])
    except ValueError:
        return None


def url_list(base: URL, values: Any) -> tuple[str, ...]:
    """The readable URLs of a list, resolved against ``base``, first occurrence of each kept."""
    if not isinstance(values, list):
        return ()
    found = (optional_url(base, value) for value in values)
    return tuple(dict.fromkeys(url for url in found if url is not None))
