"""Where the app sends clients: every redirect's location is built here, under ``[server] public_url``."""

from __future__ import annotations

from aiohttp import web
from yarl import URL

from proxy.web.keys import SETTINGS


def location(request: web.Request, route: str, *, fragment: str = "", **parts: str) -> str:
    """The URL of the named ``route`` filled with ``parts``, for a Location header.

    Behind a reverse proxy (``public_url = "https://host/prefix"``) it is absolute, below that URL:
    ``https://host/prefix/pypi/simple/foo/``. Without one it is a path on the request's own origin
    (``/pypi/simple/foo/``), as clients resolve it against the URL they asked for (RFC 9110 10.2.2).
    The request's query string is kept; ``fragment`` (unencoded) is appended when given.
    """
    url: URL = request.app.router[route].url_for(**parts)
    if request.query_string:
        url = url.with_query(request.query_string)
    if fragment:
        url = url.with_fragment(fragment)
    public = request.app[SETTINGS].server.public_url
    return f"{public.rstrip('/')}{url}" if public else str(url)


def moved(request: web.Request, route: str, *, fragment: str = "", **parts: str) -> web.HTTPMovedPermanently:
    """A 301 to the canonical URL of ``route`` (non-normalised names, missing slashes: PEP 503)."""
    return web.HTTPMovedPermanently(location(request, route, fragment=fragment, **parts))


def found(request: web.Request, route: str, *, fragment: str = "", **parts: str) -> web.HTTPFound:
    """A 302 to ``route``: where a URL leads today, not a permanent move (a client may ask again)."""
    return web.HTTPFound(location(request, route, fragment=fragment, **parts))
