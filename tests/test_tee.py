"""Cold files are streamed while they download, and no client ever sees a clean end of
unverified bytes (issue 12 M4 and M8, STANDARDS H5), in one server process.

The family: HTTP/1.0 and 1.1; a size listed, announced only by upstream (Content-Length), or
known only at the end (HTML listing, chunked upstream); GET, HEAD and Range; a good, a corrupt
and a truncated upstream body; the client that started the download and one that joined it.
A failed download either breaks the response (too few bytes for its Content-Length, or no final
chunk) or is a clean 502 before any byte. The bare client in tests/rawhttp.py shows which.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from tests import rawhttp
from tests.conftest import start_client
from tests.fakeupstream import FakeFile, FakeUpstream

MakeSettings = Callable[..., Settings]
BLOB = FakeFile("blob-1.0.tar.gz", os.urandom(600_000))
PATH = f"/pypi/files/blob/{BLOB.filename}"
SIZES = ["listed", "announced", "unknown"]


def prepare_upstream(fake: FakeUpstream, size: str, outcome: str) -> None:
    """Listing with or without sizes; upstream with or without Content-Length; one planned body,
    slow enough (about 0.2 s) that a second client joins the download in flight."""
    fake.add_file("blob", BLOB)
    fake.flavour = "json" if size == "listed" else "html"
    fake.bad.chunked_files = size == "unknown"
    fake.bad.file_plan = [outcome]
    fake.bad.file_chunk_size = 32 * 1024
    fake.bad.file_chunk_pause = 0.01


async def part_file_growing(data_dir: Path) -> None:
    """Poll until some download's part file holds bytes (the download is in flight)."""
    tmp = data_dir / "cache" / "tmp"
    for _ in range(1000):
        if tmp.is_dir() and any(p.stat().st_size for p in tmp.iterdir() if p.is_file()):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("no download started")


def expected(method: str, version: str, size: str, outcome: str) -> tuple[int, str, bool]:
    """(status, framing, complete) a client must get."""
    if method == "HEAD":  # no body to break: it waits for the verified file
        return (200 if outcome == "good" else 502), "none", True
    if outcome == "good" and size == "unknown" and version == "1.0":  # sent once verified, as cached
        return (206 if method == "RANGE" else 200), "length", True
    if outcome == "good":  # a Range request of a file being downloaded gets the whole file
        return 200, ("chunked" if size == "unknown" else "length"), True
    if size == "unknown" and version == "1.0":  # no chunks, no length: a clean error instead
        return 502, "length", True
    return 200, ("chunked" if size == "unknown" else "length"), False


def check(response: rawhttp.RawResponse, method: str, version: str, size: str, outcome: str) -> None:
    where = f"{method} HTTP/{version}, size {size}, {outcome} upstream body"
    assert (response.status, response.framing, response.complete) == expected(method, version, size, outcome), where
    if response.status == 502 and method != "HEAD":
        assert b"Upstream failed" in response.body, where
    if response.status == 200 and method == "HEAD":
        assert int(response.headers["Content-Length"]) == len(BLOB.content), where
    elif response.status == 206:
        assert response.body == BLOB.content[:100], where
    elif response.status == 200 and response.complete:
        assert hashlib.sha256(response.body).hexdigest() == BLOB.sha256, where
    elif response.status == 200:  # too few bytes, or all of them but no final chunk
        assert len(response.body) <= len(BLOB.content), where
    assert "Content-Encoding" not in response.headers, where


async def fetch(client: TestClient, method: str, version: str) -> rawhttp.RawResponse:
    verb, headers = ("GET", {"Range": "bytes=0-99"}) if method == "RANGE" else (method, {})
    return await rawhttp.request(client.host, client.port, PATH, verb, version, headers)


@pytest.mark.parametrize("outcome", ["good", "corrupt", "truncate"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "RANGE"])
async def test_no_client_sees_a_clean_end_of_unverified_bytes(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
        method: str, version: str, size: str, outcome: str) -> None:
    """M4 / H5, the downloading client and one that joins the download in flight (a cold Range
    request gets the whole file as it downloads: 200; or its range once verified: 206)."""
    prepare_upstream(fake_upstream, size, outcome)
    settings = upstream_settings()
    client = await start_client(aiohttp_client, settings)
    assert (await client.get("/pypi/simple/blob/")).status == 200
    first = asyncio.ensure_future(fetch(client, method, version))
    await part_file_growing(settings.data_dir)
    second = await fetch(client, method, version)
    for response in (await first, second):
        check(response, method, version, size, outcome)
    assert fake_upstream.requests[f"/files/{BLOB.filename}"] == 1, "the second client joined the download"
    assert list((settings.data_dir / "cache" / "tmp").iterdir()) == []
    cached = settings.data_dir / "cache" / "files" / "blob" / BLOB.filename
    assert cached.exists() == (outcome == "good")


async def test_reads_go_with_bytes_not_with_time(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """M8: a slow cold download (4 KiB pieces, as a slow link delivers them) cost a core: the
    reader polled while bytes sat in the writer's buffer. Now each reader reads at most once per
    piece written (plus the end), and sleeps in between."""
    drip = fake_upstream.add_file("drip", FakeFile("drip-1.0.tar.gz", os.urandom(256 * 1024)))
    fake_upstream.bad.file_chunk_size = 4096
    fake_upstream.bad.file_chunk_pause = 0.005
    pieces = len(drip.content) // 4096
    client = await start_client(aiohttp_client, upstream_settings())
    await client.get("/pypi/simple/drip/")
    reads = 0
    real_pread = os.pread

    def counting_pread(fd: int, size: int, offset: int) -> bytes:
        nonlocal reads
        reads += 1
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", counting_pread)
    response = await client.get(f"/pypi/files/drip/{drip.filename}")
    assert hashlib.sha256(await response.read()).hexdigest() == drip.sha256
    assert response.headers["X-Proxy-Cache"] == "miss"
    assert 1 <= reads <= pieces + 2, f"{reads} reads for {pieces} pieces"
