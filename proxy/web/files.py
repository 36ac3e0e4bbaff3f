"""Distribution and PEP 658 metadata files: local ones by sendfile (Range, ETag, HEAD), cold
upstream ones streamed to the client while the single download fills the cache."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import Executor
from pathlib import Path
from typing import BinaryIO

import structlog
from aiohttp import HttpVersion11, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.web_request import BaseRequest

from proxy.names import check_safe_filename, content_type_for, validate_project_name
from proxy.services.downloads import CHUNK, Download
from proxy.web import redirects
from proxy.web.keys import CATALOG, EXECUTOR
from proxy.web.simple import source_headers

log = structlog.get_logger(__name__)
IMMUTABLE = "max-age=31536000, immutable, public"


async def distribution(request: web.Request) -> web.StreamResponse:
    raw_project, filename = request.match_info["project"], request.match_info["filename"]
    name = validate_project_name(raw_project)
    if raw_project != name:
        raise redirects.moved(request, "file", project=name, filename=filename)
    check_safe_filename(filename)
    catalog = request.app[CATALOG]
    with catalog.pinned(name, filename):  # not evicted from the cache while being sent
        served = await catalog.file(name, filename)
        headers = {
            "Content-Type": content_type_for(filename),
            "Cache-Control": IMMUTABLE,
            **source_headers(served.source.value, served.cache.value if served.cache else None),
        }
        if served.path is not None:
            return await send_file(request, served.path, headers)
        assert served.download is not None
        return await follow(request, served.download, headers)


async def send_file(request: web.Request, path: Path, headers: dict[str, str]) -> web.StreamResponse:
    """A complete, verified file, sent now (sendfile, Range, conditional GET)."""
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
    prepare after the handler returns is then a no-op."""

    async def prepare(self, request: BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return None
        return await super().prepare(request)


async def follow(request: web.Request, download: Download, headers: dict[str, str]) -> web.StreamResponse:
    """Send a file while it downloads; on a failed download, break the connection off.

    The last byte is held back until the file is verified, so a client never sees a corrupt
    file as complete: with a Content-Length it gets too few bytes, when chunked no final chunk.
    """
    await download.started  # an upstream error here is still a clean 502/504
    if request.method == "HEAD" or (download.expected_size is None and request.version < HttpVersion11):
        # HTTP/1.0 has no chunks: without a length its response ends by closing the connection,
        # as a broken one does, so the client could not tell a corrupt file from a complete one
        # (H5). It gets the file once verified; a failed download is then a clean 502.
        return await send_file(request, await download.result, headers)
    loop = asyncio.get_running_loop()
    executor = request.app[EXECUTOR]
    handle = await _open_following(download, executor)
    try:
        response = web.StreamResponse(headers=headers)
        if download.expected_size is not None:
            response.content_length = download.expected_size
        await response.prepare(request)
        position = 0
        while True:
            limit = download.sendable()
            if position < limit:
                chunk = await loop.run_in_executor(
                    executor, os.pread, handle.fileno(), min(CHUNK, limit - position), position
                )
                await response.write(chunk)
                position += len(chunk)
            elif download.result.done():
                break
            else:
                await download.wait_sendable_beyond(position)
    finally:
        # Shielded: a request cancelled here (client gone, shutdown) still closes the file.
        await asyncio.shield(loop.run_in_executor(executor, handle.close))
    if download.result.exception() is not None:
        log.warning("download_response_aborted", filename=download.spec.filename, sent=position)
        if request.transport is not None:
            request.transport.close()  # write_eof now fails: the client sees a broken response
        return response
    await response.write_eof()
    return response


async def _open_following(download: Download, executor: Executor) -> BinaryIO:
    """The temp file being written; once it was renamed into the cache, the cached file."""
    try:
        return await _open_binary(download.temp_path, executor)
    except FileNotFoundError:
        return await _open_binary(await download.result, executor)


async def _open_binary(path: Path, executor: Executor) -> BinaryIO:
    """Open off the loop; if the request is cancelled meanwhile, the file is still closed."""
    opening: asyncio.Future[BinaryIO] = asyncio.get_running_loop().run_in_executor(executor, _open_rb, path)
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_opened)
        raise


def _open_rb(path: Path) -> BinaryIO:
    return open(path, "rb")


def _close_opened(opening: asyncio.Future[BinaryIO]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()
