"""Distribution and PEP 658 metadata files: local ones by sendfile (``proxy.web.filesend``: Range,
ETag, HEAD) or by the front server (``proxy.web.front``), cold upstream ones streamed to the client
from the verified stream of their download."""

from __future__ import annotations

import structlog
from aiohttp import HttpVersion11, web

from proxy.core.errors import ProjectNotFound, ProxyError
from proxy.core.merge import Source
from proxy.core.names import check_safe_filename, content_type_for, validate_project_name
from proxy.repository.base import Resource, VerifiedStream
from proxy.web import objectfiles, redirects
from proxy.web.filesend import FileVanished, send_file
from proxy.web.keys import CATALOG, FRONT
from proxy.web.simple import source_headers

log = structlog.get_logger(__name__)
IMMUTABLE = "max-age=31536000, immutable, public"
# A front server passes a download in progress on as it arrives, not through its temporary files.
UNBUFFERED = {"X-Accel-Buffering": "no"}


async def distribution(request: web.Request) -> web.StreamResponse:
    raw_project, filename = request.match_info["project"], request.match_info["filename"]
    name = validate_project_name(raw_project)
    if raw_project != name:
        raise redirects.moved(request, "file", project=name, filename=filename)
    check_safe_filename(filename)
    catalog = request.app[CATALOG]
    with catalog.pinned(name, filename):  # not evicted from the cache by this process while sent
        for _ in range(2):  # a cached file evicted meanwhile is fetched again, once
            served = await catalog.resource(name, filename)
            headers = {
                "Content-Type": content_type_for(filename),
                "Cache-Control": IMMUTABLE,
                **source_headers(served.source.value, served.cache.value if served.cache else None),
                **({"X-Proxy-Policy": served.policy.encode("ascii", "replace").decode()} if served.policy else {}),
            }
            if served.blob is not None:  # the shared mode's object store
                return await objectfiles.send_object(request, served.blob, headers)
            try:
                if served.path is not None:
                    return await send_local(request, served, headers)
                assert served.stream is not None
                return await send_stream(request, served.stream, headers)
            except FileVanished:
                log.info("cached_file_vanished", project=name, filename=filename)
        raise ProjectNotFound(f"The file {filename!r} of {name!r} is gone.", project=name)


async def send_local(request: web.Request, served: Resource, headers: dict[str, str]) -> web.StreamResponse:
    """A complete local file: handed to the front server when there is one that can be told its
    path (``proxy.web.front``), else sent now. FileVanished when it is not there (nothing sent)."""
    assert served.path is not None
    front = request.app.get(FRONT)
    if front is not None and (handover := front.handover(served.path)) is not None:
        return front.answer(request, handover, headers, served.version)
    return await send_file(request, served.path, headers, size=served.size, version=served.version,
                           private=served.source is Source.PRIVATE)


async def send_stream(request: web.Request, stream: VerifiedStream, headers: dict[str, str]) -> web.StreamResponse:
    """Send a file while it downloads; on a failed download, break the connection off.

    A client never sees the end of unverified bytes (H5): with a Content-Length it gets too few
    of them, when chunked no final chunk. HTTP/1.0 has no chunks: without a length its response
    ends by closing the connection, as a broken one does, so such a client, and HEAD, get the
    file once verified; a failed download is then a clean 502.
    """
    try:
        await stream.start()  # an upstream error here is still a clean 502/504
        if request.method == "HEAD" or (stream.size is None and request.version < HttpVersion11):
            return await send_file(request, await stream.complete(), headers)
        response = web.StreamResponse(headers={**headers, **UNBUFFERED} if FRONT in request.app else headers)
        if stream.size is not None:
            response.content_length = stream.size
        await response.prepare(request)
        sent = 0
        try:
            while chunk := await stream.read():
                await response.write(chunk)
                sent += len(chunk)
        except ProxyError as exc:
            log.warning("download_response_aborted", filename=stream.filename, sent=sent, error=str(exc))
            if request.transport is not None:
                request.transport.close()  # write_eof now fails: the client sees a broken response
            return response
        await response.write_eof()
        return response
    finally:
        stream.close()
