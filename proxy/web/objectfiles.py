"""Files in the object store (the shared mode's private files, issue 14): a 302 to a short-lived
presigned URL when ``[storage] objects_serve = "redirect"``, else streamed through this server
with HEAD, a strong ETag (the sha256 the index lists), conditional GET and one byte range, as
local files are sent."""

from __future__ import annotations

import structlog
from aiohttp import web

from proxy.core.errors import ProxyError
from proxy.repository.base import StoredObject

log = structlog.get_logger(__name__)


async def send_object(request: web.Request, blob: StoredObject, headers: dict[str, str]) -> web.StreamResponse:
    """The object ``blob`` as the answer to ``request``; ``headers`` go on a 200 or 206. A store
    that fails before anything is sent raises (a clean 503); midway, the connection is broken
    off, so the client never sees the clean end of a short file."""
    etag = f'"{blob.sha256}"'
    if _matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers={"ETag": etag, "Cache-Control": headers.get("Cache-Control", "")})
    if blob.location is not None:
        # Not cacheable: the URL expires (objects_presign_ttl); the client asks here again.
        redirect = {k: v for k, v in headers.items() if k.startswith("X-Proxy-")}
        return web.Response(status=302, headers={**redirect, "Location": await blob.location(),
                                                 "Cache-Control": "no-store"})
    headers = {**headers, "ETag": etag, "Accept-Ranges": "bytes"}
    chosen = _range(request, blob.size, etag)
    if chosen is None:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{blob.size}", "ETag": etag})
    start, end = chosen
    status = 200
    if (start, end) != (0, blob.size):
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{blob.size}"
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = end - start
    if request.method == "HEAD" or start == end:
        await response.prepare(request)
        await response.write_eof()
        return response
    return await _stream(request, response, blob, start, end)


async def _stream(request: web.Request, response: web.StreamResponse, blob: StoredObject, start: int,
                  end: int) -> web.StreamResponse:
    reader = await blob.open(start, end)  # a missing object or a failing store: still a clean answer
    sent = 0
    try:
        await response.prepare(request)
        async for chunk in reader:
            await response.write(chunk)
            sent += len(chunk)
        await response.write_eof()
    except ProxyError as exc:
        log.warning("object_response_aborted", sha256=blob.sha256, sent=sent, error=str(exc))
        if request.transport is not None:
            request.transport.close()  # the client sees a broken response, not a short file
    except ConnectionError:
        log.info("client_went_away", sha256=blob.sha256, sent=sent)
    return response


def _matches(header: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (or is ``*``); weak tags compare too (RFC 9110 13.1.2)."""
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


def _range(request: web.Request, size: int, etag: str) -> tuple[int, int] | None:
    """The bytes to send, ``(start, end)`` with ``end`` exclusive: all of them without a Range
    header (or with an If-Range naming another version); None when the range cannot be
    satisfied (416). One range only (RFC 9110 14.2: a server may ignore the others)."""
    if_range = request.headers.get("If-Range")
    if "Range" not in request.headers or (if_range is not None and if_range.strip() != etag):
        return 0, size
    try:
        wanted = request.http_range
    except ValueError:
        return None
    start, stop = wanted.start, wanted.stop
    if start is None:
        return 0, size
    if start < 0:  # the last -start bytes
        return max(size + start, 0), size
    if start >= size:
        return None
    return start, size if stop is None else min(stop, size)
