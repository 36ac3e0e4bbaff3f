"""The web interface's stylesheet and script, as files of their own (issue 12 L4): its Content
Security Policy allows no inline code, only these, from this origin."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

ASSETS = Path(__file__).resolve().parent / "templates"
_TYPES = {"style.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}


async def asset(request: web.Request) -> web.StreamResponse:
    """``/-/static/<name>``: revalidated on each use (ETag, Last-Modified; a 304 is cheap), so an
    upgrade's new stylesheet is seen at once."""
    name = request.match_info["name"]
    if name not in _TYPES:
        raise web.HTTPNotFound(text=f"No asset {name!r}.\n")
    return web.FileResponse(ASSETS / name, headers={"Content-Type": _TYPES[name], "Cache-Control": "no-cache"})
