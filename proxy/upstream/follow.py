"""Following a download another server process writes (``--workers``): one part file, one inode.

The follower opens the part file once and keeps reading *that* inode, its size from ``fstat``
of its own descriptor. The download is complete only when its writer let go of the lock and the
cached file is that same inode (the writer renames the part file it verified, and a rename keeps
the inode). Anything else (the writer failed, crashed, or a retry's new part file took the name)
ends the download as failed: its readers that sent nothing yet may still read a verified copy
in the cache (``FileStream``); the others break their responses. Never is a path trusted for
size or completion.

The part file is polled, with back-off while nothing changes (20 ms doubling to 500 ms), so a
stalled writer costs a few system calls a second, and a busy one one poll per batch of bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from proxy.core.errors import UpstreamError
from proxy.storage.upstream_files import FileCache
from proxy.upstream.tee import Download

T = TypeVar("T")
log = structlog.get_logger(__name__)
FIRST_POLL_S = 0.02
MAX_POLL_S = 0.5

Run = Callable[..., Awaitable[Any]]


def next_delay(delay: float) -> float:
    """The back-off between polls that found nothing new."""
    return min(delay * 2, MAX_POLL_S)


async def follow(download: Download, fd: int, cache: FileCache, run: Run) -> None:
    """Track the part file open as ``fd`` until it is committed (``download`` succeeds) or its
    writer lets go of it otherwise (UpstreamError). ``fd`` is the download's from now on."""
    download.fd.fd = fd
    project, filename = download.project, download.filename
    delay = FIRST_POLL_S
    polls = 0
    while True:
        state = await run(cache.part_state, fd, project, filename)
        polls += 1
        if state.size > download.written:
            download.wrote(state.size)
            delay = FIRST_POLL_S
        else:
            delay = next_delay(delay)
        if not state.writing:
            break
        await asyncio.sleep(delay)
    log.debug("download_followed", filename=filename, polls=polls, bytes=state.size)
    if not state.committed:
        raise UpstreamError(f"{filename}: the download in another server process failed")
    if download.expected_size is not None and state.size != download.expected_size:
        raise UpstreamError(f"{filename}: the cached file has {state.size} bytes, listed {download.expected_size}")
    download.succeed(cache.path(project, filename))
