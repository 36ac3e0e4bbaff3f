"""Complete local files sent by the server itself: conditional GET, one byte range, HEAD, and
the bytes by ``loop.sendfile`` from a descriptor of the open-file cache (``proxy.web.openfiles``).

Nothing here stats or opens a file on a request whose file is open already: its size and
modification time are those the descriptor was opened with, its ETag is made from the version
the repository gives (the listed sha256 of a private file; the size and mtime of a cached one).
The bytes sent are always the file's own (STANDARDS H5): never a ``.gz`` neighbour, never a
Content-Encoding.
"""

from __future__ import annotations

import asyncio
import os
import resource
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from aiohttp import web

from proxy.config import Settings
from proxy.core import conditional
from proxy.core.errors import CorruptStorage
from proxy.web.front import FrontServer
from proxy.web.keys import EXECUTOR, FRONT, OPEN_FILES, SETTINGS
from proxy.web.openfiles import MAX_FILES, OpenFile, OpenFiles, fitting

log = structlog.get_logger(__name__)
FALLBACK_CHUNK = 256 * 1024  # bytes read at a time where the transport cannot sendfile


class FileVanished(Exception):
    """A local file was removed between the look-up and the open (evicted by another process)."""


def setup(app: web.Application, settings: Settings) -> None:
    """Give ``app`` the open-file cache (after its executor) and, when the settings name one, its
    front server (``proxy.web.front``)."""
    app.cleanup_ctx.append(_open_files)
    if (front := FrontServer.from_settings(settings)) is not None:
        app[FRONT] = front


async def _open_files(app: web.Application) -> AsyncIterator[None]:
    soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    app[OPEN_FILES] = files = OpenFiles(app[EXECUTOR], fitting(MAX_FILES * 8 if soft_limit < 0 else soft_limit))
    files.start()
    yield
    await files.close()


def validators(request: web.Request) -> conditional.Validators:
    """The request's conditional and range header fields."""
    headers = request.headers
    return conditional.Validators(headers.get("If-Match"), headers.get("If-None-Match"),
                                  headers.get("If-Modified-Since"), headers.get("If-Unmodified-Since"),
                                  headers.get("If-Range"), headers.get("Range"))


async def send_file(request: web.Request, path: Path, headers: dict[str, str], *, size: int | None = None,
                    version: str | None = None, private: bool = False) -> web.StreamResponse:
    """Send the complete file at ``path`` now. ``size`` (bytes) and ``version`` (sha256 or stat
    version) are what the repository knows of it, when it does. FileVanished when the file is not
    there or, for a cached file, not the one expected (nothing was sent); CorruptStorage for a
    private file whose size is not the one its index lists."""
    files = request.app[OPEN_FILES]
    try:
        opened = await files.acquire(path, version)
    except FileNotFoundError:
        raise FileVanished(str(path)) from None
    try:
        if size is not None and opened.size != size:
            files.forget(opened)
            if private:
                raise _corrupt(request, path, opened.size, size)
            raise FileVanished(str(path))
        etag = conditional.strong_etag(version or conditional.stat_version(opened.size, opened.mtime_ns))
        answer = conditional.evaluate(validators(request), etag, opened.mtime, opened.size)
        response = _response(answer, headers, etag, opened)
        try:
            await response.prepare(request)
            if answer.count and request.method != "HEAD":
                await _send_bytes(request, response, opened, answer.offset, answer.count)
            await response.write_eof()
        except ConnectionError:
            log.info("client_went_away", filename=path.name)
        return response
    finally:
        files.release(opened)


def _response(answer: conditional.Answer, headers: dict[str, str], etag: str, opened: OpenFile) -> web.StreamResponse:
    """The response ``answer`` says, with the file's validators (a 304 has no length)."""
    response = web.StreamResponse(status=answer.status, headers=headers)
    response.headers["ETag"] = etag
    response.headers["Last-Modified"] = opened.last_modified
    if answer.status in (200, 206):
        response.headers["Accept-Ranges"] = "bytes"
    if answer.content_range is not None:
        response.headers["Content-Range"] = answer.content_range
    if answer.status != 304:
        response.content_length = answer.count
    return response


async def _send_bytes(request: web.Request, response: web.StreamResponse, opened: OpenFile,
                      offset: int, count: int) -> None:
    """``count`` bytes of ``opened`` from ``offset``: by sendfile where the transport has it (plain
    TCP), else read in the executor at explicit offsets (TLS, event loops without sendfile)."""
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away")
    loop = asyncio.get_running_loop()
    try:
        await loop.sendfile(transport, opened, offset, count, fallback=False)  # type: ignore[arg-type]
        return
    except (NotImplementedError, RuntimeError):  # no native sendfile here: nothing was sent
        pass
    executor = request.app[EXECUTOR]
    end = offset + count
    while offset < end:
        chunk = await loop.run_in_executor(executor, os.pread, opened.fd, min(FALLBACK_CHUNK, end - offset), offset)
        if not chunk:  # shorter than when opened: never end such a response cleanly
            log.error("served_file_shrank", fd=opened.fd, offset=offset, expected=end)
            transport.close()
            return
        await response.write(chunk)
        offset += len(chunk)


def _corrupt(request: web.Request, path: Path, found: int, listed: int) -> CorruptStorage:
    data_dir = request.app[SETTINGS].data_dir
    relative = str(path.relative_to(data_dir)) if path.is_relative_to(data_dir) else path.name
    return CorruptStorage(str(path), relative, f"{found} bytes where its index lists {listed}",
                          "restore it from a backup, or remove the release and upload it again "
                          "(pypi-proxy check lists every damaged file)")
