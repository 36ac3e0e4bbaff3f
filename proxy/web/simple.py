"""Simple repository API views: PEP 503 HTML and PEP 691 JSON, negotiated by Accept."""

from __future__ import annotations

from aiohttp import web

from proxy.errors import ProjectNotFound
from proxy.names import normalize
from proxy.negotiate import choose_content_type
from proxy.services.index import Rendered
from proxy.web.keys import INDEX

# Private pages change whenever someone publishes; clients revalidate each time (a 304 is cheap),
# so a new release is installable the moment its upload returns (STANDARDS D2, E5).
PAGE_CACHE_CONTROL = "max-age=0, must-revalidate, public"


def page_response(request: web.Request, page: Rendered) -> web.Response:
    headers = {
        "ETag": page.etag,
        "Vary": "Accept",
        "Cache-Control": PAGE_CACHE_CONTROL,
    }
    if etag_matches(request.headers.get("If-None-Match"), page.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=page.body, headers={**headers, "Content-Type": page.content_type})


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison, a list of tags, or ``*``."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


async def root(request: web.Request) -> web.Response:
    content_type = choose_content_type(request.headers.get("Accept"))
    page = await request.app[INDEX].root_page(content_type)
    return page_response(request, page)


async def project(request: web.Request) -> web.Response:
    raw = request.match_info["project"]
    name = normalize(raw)
    if raw != name or not request.path.endswith("/"):
        # PEP 503: clients may request any spelling; the canonical URL is normalised with a slash.
        raise web.HTTPMovedPermanently(request.app.router["simple_project"].url_for(project=name))
    content_type = choose_content_type(request.headers.get("Accept"))
    page = await request.app[INDEX].page(name, content_type)
    if page is None:
        raise ProjectNotFound(f"No project named {name!r}.")
    return page_response(request, page)


async def root_redirect(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently(request.app.router["simple_root"].url_for())
