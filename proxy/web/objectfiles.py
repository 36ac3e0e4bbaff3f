"""Files in the object store (the shared mode's private files, issue 14): a 302 to a short-lived
presigned URL when ``[storage] objects_serve = "redirect"``, else streamed through this server
with HEAD, a strong ETag (the sha256 the index lists), conditional GET and one byte range, as
local files are sent."""

from __future__ import annotations

import structlog
from aiohttp import web

from proxy.core import conditional
from proxy.core.errors import ProxyError
from proxy.repository.base import StoredObject
from proxy.web.filesend import validators

log = structlog.get_logger(__name__)


async def send_object(request: web.Request, blob: StoredObject, headers: dict[str, str]) -> web.StreamResponse:
    """The object ``blob`` as the answer to ``request``; ``headers`` go on a 200 or 206. A store
    that fails before anything is sent raises (a clean 503); midway, the connection is broken
    off, so the client never sees the clean end of a short file. Validators and Range are
    judged as for local files (``proxy.core.conditional``)."""
    etag = conditional.strong_etag(blob.sha256)
    answer = conditional.evaluate(validators(request), etag, None, blob.size)
    if answer.status in (304, 412):
        return web.Response(status=answer.status, headers={"ETag": etag,
                                                           "Cache-Control": headers.get("Cache-Control", "")})
    if blob.location is not None:
        # Not cacheable: the URL expires (objects_presign_ttl); the client asks here again.
        redirect = {k: v for k, v in headers.items() if k.startswith("X-Proxy-")}
        return web.Response(status=302, headers={**redirect, "Location": await blob.location(),
                                                 "Cache-Control": "no-store"})
    if answer.status == 416:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{blob.size}", "ETag": etag})
    headers = {**headers, "ETag": etag, "Accept-Ranges": "bytes"}
    if answer.content_range is not None:
        headers["Content-Range"] = answer.content_range
    response = web.StreamResponse(status=answer.status, headers=headers)
    response.content_length = answer.count
    if request.method == "HEAD" or not answer.count:
        await response.prepare(request)
        await response.write_eof()
        return response
    return await _stream(request, response, blob, answer.offset, answer.offset + answer.count)


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
