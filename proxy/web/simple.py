"""Simple repository API views: PEP 503 HTML and PEP 691 JSON, negotiated by Accept."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import hdrs, web
from multidict import istr

from proxy.core import compression
from proxy.core.merge import CacheState, Source
from proxy.core.names import validate_project_name
from proxy.core.negotiate import choose_content_type
from proxy.web import redirects
from proxy.web.keys import CATALOG, REPRESENTATIONS
from proxy.web.representations import Rendered, Representation

_R = TypeVar("_R", bound=web.StreamResponse)

# Bodies above this are written in slices, each awaiting the socket: a large page sent whole to
# many slow readers would be copied into every connection's buffer at once.
SLICE = 64 * 1024
X_PROXY_SOURCE, X_PROXY_CACHE = istr("X-Proxy-Source"), istr("X-Proxy-Cache")


def representations(page: Rendered, accept_encoding: str | None) -> tuple[Representation, ...]:
    """The page's representations this request may get, best first: the gzip copy when there is
    one and it is accepted, then the plain bytes (always acceptable)."""
    if page.packed is not None and compression.accepts_gzip(accept_encoding):
        return page.packed, page.plain
    return (page.plain,)


async def page_response(request: web.Request, page: Rendered, source: Source,
                        cache: CacheState | None) -> web.StreamResponse:
    """A rendered page, gzip-coded when accepted. A 304 answers an If-None-Match naming any
    representation this request may get (a cache revalidating the plain copy it holds gets a 304
    for it, with that copy's ETag); otherwise the best one is sent. HEAD sends its headers.
    Headers: the representation's prepared ones (``Representation``), and which source answered."""
    choices = representations(page, request.headers.get(hdrs.ACCEPT_ENCODING))
    if_none_match = request.headers.get(hdrs.IF_NONE_MATCH)
    if if_none_match:
        for choice in choices:
            if etag_matches(if_none_match, choice.etag):
                return _with_source(web.Response(status=304, headers=choice.not_modified), source, cache)
    best = choices[0]
    body = best.body
    if len(body) <= SLICE or request.method == "HEAD":
        return _with_source(web.Response(body=body, headers=best.ok), source, cache)
    response = _with_source(web.StreamResponse(headers=best.ok), source, cache)
    response.content_length = len(body)
    await response.prepare(request)
    view = memoryview(body)
    for start in range(0, len(view), SLICE):
        await response.write(view[start:start + SLICE])
    await response.write_eof()
    return response


def _with_source(response: _R, source: Source, cache: CacheState | None) -> _R:
    headers = response.headers
    headers[X_PROXY_SOURCE] = source.value
    if cache is not None:
        headers[X_PROXY_CACHE] = cache.value
    return response


def source_headers(source: str, cache: str | None) -> dict[str, str]:
    """Which source answered (private, upstream, merged) and, for upstream, how the cache did."""
    return {"X-Proxy-Source": source, **({"X-Proxy-Cache": cache} if cache else {})}


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison, a list of tags, or ``*``."""
    if not if_none_match:
        return False
    if if_none_match == etag:  # what a client revalidating its one copy sends
        return True
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


async def root(request: web.Request) -> web.StreamResponse:
    content_type = choose_content_type(request.headers.get("Accept"))
    listing = await request.app[CATALOG].project_list()
    page = await request.app[REPRESENTATIONS].project_list(listing, content_type)
    return await page_response(request, page, listing.source, listing.cache)


async def project(request: web.Request) -> web.StreamResponse:
    raw = request.match_info["project"]
    name = validate_project_name(raw)
    if raw != name or not request.path.endswith("/"):
        # PEP 503: clients may request any spelling; the canonical URL is normalised with a slash.
        raise redirects.moved(request, "simple_project", project=name)
    content_type = choose_content_type(request.headers.get("Accept"))
    served = await request.app[CATALOG].project_page(name)
    page = await request.app[REPRESENTATIONS].project_page(served, content_type)
    return await page_response(request, page, served.source, served.cache)


async def root_redirect(request: web.Request) -> web.Response:
    raise redirects.moved(request, "simple_root")
