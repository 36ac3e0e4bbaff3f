"""A server process following another one's download (``--workers``), by identity, not by path
(issue 12 H1, M4, M8). Two apps on one data directory stand for two worker processes: flock
and the part file behave between them as between processes (a lock is per open file). The same
with real ``pypi-proxy serve --workers 2`` processes: tests/e2e/test_service.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from proxy.core.errors import UpstreamError
from proxy.storage.upstream_files import FileCache, PartState
from proxy.upstream.tee import Download, FileStream
from proxy.web.keys import CATALOG
from tests import rawhttp
from tests.conftest import start_client
from tests.fakeupstream import FakeFile, FakeUpstream
from tests.test_tee import BLOB, PATH, check, fetch, part_file_growing, prepare_upstream
from tests.waiting import until

MakeSettings = Callable[..., Settings]


async def two_workers(aiohttp_client: Any, settings: Settings) -> tuple[TestClient, TestClient]:
    first = await start_client(aiohttp_client, settings)
    second = await start_client(aiohttp_client, settings)
    for client in (first, second):
        assert (await client.get("/pypi/simple/blob/")).status == 200
    return first, second


def file_cache(client: TestClient) -> FileCache:
    upstreams = client.server.app[CATALOG].upstreams
    assert upstreams is not None
    return upstreams.files


@pytest.mark.parametrize("outcome", ["good", "corrupt", "truncate"])
@pytest.mark.parametrize("size", ["listed", "announced", "unknown"])
@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "RANGE"])
async def test_a_follower_in_another_process_never_sees_a_clean_end_of_unverified_bytes(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
        method: str, version: str, size: str, outcome: str) -> None:
    """M4 / H5 across workers. Upstream's Content-Length is known only to the downloading
    process: to a follower such a file is one of unknown size until it is verified."""
    prepare_upstream(fake_upstream, size, outcome)
    settings = upstream_settings()
    first, second = await two_workers(aiohttp_client, settings)
    downloading = asyncio.ensure_future(fetch(first, "GET", "1.1"))
    await part_file_growing(settings.data_dir)
    followed = await fetch(second, method, version)
    check(followed, method, version, "unknown" if size == "announced" else size, outcome)
    check(await downloading, "GET", "1.1", size, outcome)
    assert fake_upstream.requests[f"/files/{BLOB.filename}"] == 1, "the second worker followed the first"


async def test_a_follower_never_sends_a_failed_download_that_a_retry_replaced(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream) -> None:
    """H1 (shared/repro/h1_workers_corrupt.py): worker A's download fails verification, A retries
    at once and creates a new part file under the same name; worker B, following A's first part
    file, sent 2 MiB of wrong bytes as a complete 200. Now B breaks its response off, and every
    later answer is the verified file."""
    prepare_upstream(fake_upstream, "listed", "corrupt")
    fake_upstream.bad.file_plan.append("ok")
    settings = upstream_settings()
    first, second = await two_workers(aiohttp_client, settings)
    corrupt = asyncio.ensure_future(fetch(first, "GET", "1.1"))
    await part_file_growing(settings.data_dir)
    following = asyncio.ensure_future(fetch(second, "GET", "1.1"))
    check(await corrupt, "GET", "1.1", "listed", "corrupt")
    retry = asyncio.ensure_future(fetch(first, "GET", "1.1"))  # at once, as the repro's client does
    check(await following, "GET", "1.1", "listed", "corrupt")
    check(await retry, "GET", "1.1", "listed", "good")
    for client in (first, second):
        check(await fetch(client, "GET", "1.1"), "GET", "1.1", "listed", "good")
    assert fake_upstream.requests[f"/files/{BLOB.filename}"] == 2


@pytest.mark.parametrize("size", ["listed", "unknown"])
async def test_a_follower_of_a_download_cut_short_ends_and_does_not_spin(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
        monkeypatch: pytest.MonkeyPatch, size: str) -> None:
    """H1, TRUNCATE=1: the follower looped at ~95% CPU forever (empty reads of the old file while
    the new part file's size grew), even after its client had gone. Now it breaks its response
    off, with reads in proportion to the bytes."""
    prepare_upstream(fake_upstream, size, "truncate")
    settings = upstream_settings()
    first, second = await two_workers(aiohttp_client, settings)
    reads = 0
    real_pread = os.pread

    def counting_pread(fd: int, length: int, offset: int) -> bytes:
        nonlocal reads
        reads += 1
        return real_pread(fd, length, offset)

    monkeypatch.setattr(os, "pread", counting_pread)
    cut = asyncio.ensure_future(fetch(first, "GET", "1.1"))
    await part_file_growing(settings.data_dir)
    followed = await asyncio.wait_for(fetch(second, "GET", "1.1"), 10)
    check(followed, "GET", "1.1", size, "truncate")
    check(await cut, "GET", "1.1", size, "truncate")
    pieces = len(BLOB.content) // 2 // fake_upstream.bad.file_chunk_size + 1
    assert reads <= 2 * (pieces + 2), f"{reads} reads of {pieces} pieces by two readers"


async def test_a_follower_polls_a_stalled_download_with_back_off(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """M8 across workers: the follower looked at the part file every 20 ms whatever happened.
    While nothing changes it now waits longer each time (20 ms doubling up to 500 ms)."""
    prepare_upstream(fake_upstream, "listed", "good")
    fake_upstream.bad.file_stall = "hang_body"  # headers, then nothing until stopped
    settings = upstream_settings()
    first, second = await two_workers(aiohttp_client, settings)
    follower_cache = file_cache(second)
    polls = 0
    real_state = follower_cache.part_state

    def counting_state(fd: int, project: str, filename: str) -> PartState:
        nonlocal polls
        polls += 1
        return real_state(fd, project, filename)

    monkeypatch.setattr(follower_cache, "part_state", counting_state)
    stalled = asyncio.ensure_future(fetch(first, "GET", "1.1"))
    part = follower_cache.part_path("blob", BLOB.filename)
    await until(part.exists, "the first worker's part file created")
    following = asyncio.ensure_future(fetch(second, "GET", "1.1"))
    await asyncio.sleep(2.0)  # the interval measured: about 9 polls with back-off, 100 without
    assert 3 <= polls <= 12, f"{polls} polls in 2 s of a stalled download"
    await fake_upstream.stop()  # the stalled body ends short: both downloads fail before any byte
    for response in (await stalled, await following):
        assert (response.status, response.complete) == (502, True)


def committed_blob(data_dir: Path) -> tuple[FileCache, int]:
    """The verified BLOB committed into a cache, and a descriptor of a failed download's 10 bytes."""
    cache = FileCache(data_dir)
    cache.prepare()
    part = cache.claim("blob", BLOB.filename)
    assert part is not None
    part.write(BLOB.content)
    cache.commit(part, "blob", BLOB.filename)
    os.close(part.read_fd)
    (data_dir / "lost").write_bytes(b"\xee" * 10)
    return cache, os.open(data_dir / "lost", os.O_RDONLY)


async def test_a_reader_that_sent_nothing_reads_the_committed_copy_instead(tmp_path: Path) -> None:
    """The download a reader followed failed (or could not be proven complete) before it sent a
    byte, and another process committed a verified copy meanwhile: that copy is read from the
    start. One that had sent bytes gets the failure (its response breaks)."""
    cache, lost_fd = await asyncio.to_thread(committed_blob, tmp_path)
    with ThreadPoolExecutor(2) as executor:
        lost = Download("blob", BLOB.filename, len(BLOB.content))
        lost.fd.fd = lost_fd
        lost.wrote(10)
        fresh, started = FileStream(lost, cache, executor), FileStream(lost, cache, executor)
        late = FileStream(lost, cache, executor)
        assert await started.read() == b"\xee" * 10  # what was written: the file is longer
        lost.fail(UpstreamError("the download in another server process failed"))
        lost.fd.release()
        await late.start()  # not a failure: the committed copy will do
        assert late.size == len(BLOB.content)
        for stream in (fresh, late):
            body = b""
            while chunk := await stream.read():
                body += chunk
            assert hashlib.sha256(body).hexdigest() == BLOB.sha256
        with pytest.raises(UpstreamError):
            await started.read()
        for stream in (fresh, started, late):
            stream.close()
