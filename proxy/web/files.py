"""Distribution and PEP 658 metadata files: local ones by sendfile (Range, ETag, HEAD), cold
upstream ones streamed to the client from the verified stream of their download."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import structlog
from aiohttp import HttpVersion11, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.web_request import BaseRequest

from proxy.core.errors import ProjectNotFound, ProxyError
from proxy.core.names import check_safe_filename, content_type_for, validate_project_name
from proxy.repository.base import VerifiedStream
from proxy.web import objectfiles, redirects
from proxy.web.keys import CATALOG
from proxy.web.simple import source_headers

log = structlog.get_logger(__name__)
IMMUTABLE = "max-age=31536000, immutable, public"


class FileVanished(Exception):
    """A local file was removed between the look-up and the open (evicted by another process)."""


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
                    return await send_file(request, served.path, headers)
                assert served.stream is not None
                return await send_stream(request, served.stream, headers)
            except FileVanished:
                log.info("cached_file_vanished", project=name, filename=filename)
        raise ProjectNotFound(f"The file {filename!r} of {name!r} is gone.", project=name)


async def send_file(request: web.Request, path: Path, headers: dict[str, str]) -> web.StreamResponse:
    """A complete, verified file, sent now (sendfile, Range, conditional GET). FileVanished
    when it is not there (nothing was sent)."""
    response = _SentInHandler(path, headers=headers)
    try:
        await response.prepare(request)
    except ConnectionError:
        log.info("client_went_away", filename=path.name)
    return response


class ExactFile(web.FileResponse):
    """A FileResponse that sends this file's own bytes, whatever the request's Accept-Encoding.

    aiohttp's looks for a ``<file>.gz`` / ``<file>.br`` neighbour and sends that instead, with
    Content-Encoding: next to a cached ``legacy-1.0.tar`` that is ``legacy-1.0.tar.gz``, another
    distribution. A distribution is served as the bytes the listing hashes (STANDARDS H5).
    """

    def _get_file_path_stat_encoding(self, accept_encoding: str) -> tuple[Path | None, os.stat_result, None]:
        path, st, _ = super()._get_file_path_stat_encoding("")  # accepts no coding: the file itself
        return path, st, None


class _SentInHandler(ExactFile):
    """Sent while the handler still runs (so the cache pin covers the sending); aiohttp's own
    prepare after the handler returns is then a no-op. A file missing when it is opened is
    FileVanished, before anything is sent (aiohttp would answer 404 for a file the index lists)."""

    async def prepare(self, request: BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return None
        return await super().prepare(request)

    def _make_response(self, request: BaseRequest, accept_encoding: str) -> Any:
        try:
            return super()._make_response(request, accept_encoding)
        except FileNotFoundError:  # runs in a thread: the request's task gets it from prepare
            raise FileVanished(str(self._path)) from None


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
        response = web.StreamResponse(headers=headers)
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
