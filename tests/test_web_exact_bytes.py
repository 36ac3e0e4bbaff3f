"""The bytes served are the bytes listed (issue 11 B3, STANDARDS H5, D3), on every file route.

aiohttp's FileResponse answers ``Accept-Encoding: gzip`` with a ``<file>.gz`` neighbour when one
exists, labelled ``Content-Encoding: gzip``: next to a cached ``legacy-1.0.tar`` sits the cached
``legacy-1.0.tar.gz``, another distribution. For private files, cached upstream files and cold ones
(followed while downloading), their PEP 658 ``.metadata`` files, GET, HEAD and Range, under every
Accept-Encoding, with ``.gz``/``.br`` neighbours planted: sha256(body) is the listing's hash and no
Content-Encoding is ever sent on a file.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from proxy.config import Settings
from tests.builders import Dist
from tests.conftest import Uploader, start_client
from tests.fakeupstream import FakeFile, FakeUpstream

JSON = "application/vnd.pypi.simple.v1+json"
MODES = ["GET", "HEAD", "RANGE"]
# What clients send: pip/requests "gzip, deflate", uv "gzip, br, zstd" (and curl --compressed "*").
ACCEPT_ENCODINGS = ["gzip", "br", "gzip, br, zstd", "*", "identity"]
NEIGHBOURS = (".gz", ".br")
PRIVATE = Dist("Acme.Widget", "1.0")


def legacy_tar(extra: str) -> bytes:
    """An uncompressed tar sdist, as old releases on PyPI have (shared/repro/fakeup.py)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = f"Metadata-Version: 1.0\nName: legacy\nVersion: 1.0\n{extra}".encode()
        info = tarfile.TarInfo("legacy-1.0/PKG-INFO")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def add_legacy(upstream: FakeUpstream) -> None:
    """``legacy-1.0.tar`` and ``legacy-1.0.tar.gz``: each the other's compressed neighbour by name."""
    upstream.add_file("legacy", FakeFile("legacy-1.0.tar", legacy_tar("")))
    upstream.add_file("legacy", FakeFile("legacy-1.0.tar.gz", gzip.compress(legacy_tar("Summary: other\n"), mtime=0)))


@dataclass(frozen=True)
class Listed:
    sha256: str
    size: int | None  # None for .metadata files: PEP 658 lists only their hash


async def listing(client: TestClient, project: str) -> dict[str, Listed]:
    """Every file and ``.metadata`` file the proxy's PEP 691 page lists, with its hash."""
    response = await client.get(f"/pypi/simple/{project}/", headers={"Accept": JSON})
    assert response.status == 200
    found = {}
    for file in (await response.json())["files"]:
        found[file["filename"]] = Listed(file["hashes"]["sha256"], file.get("size"))
        if file["core-metadata"]:
            found[file["filename"] + ".metadata"] = Listed(file["core-metadata"]["sha256"], None)
    return found


def plant_neighbours(directory: Path, files: dict[str, Listed]) -> None:
    """``<file>.gz`` and ``<file>.br`` with other bytes: what FileResponse would pick up. A name
    that is itself listed (legacy-1.0.tar's .gz neighbour) is left to be the real file."""
    directory.mkdir(parents=True, exist_ok=True)
    for filename in files:
        for suffix in NEIGHBOURS:
            if filename + suffix not in files:
                (directory / (filename + suffix)).write_bytes(b"not the listed bytes " + suffix.encode())


async def check_exact(client: TestClient, path: str, listed: Listed, mode: str, encoding: str) -> dict[str, str]:
    """Fetch ``path`` in ``mode`` and assert the body (or, for HEAD, its length) is the listed file's.
    Returns the headers of the (first) response."""
    headers = {"Accept-Encoding": encoding}
    where = f"{mode} {path} with Accept-Encoding: {encoding}"
    if mode == "HEAD":
        response = await client.head(path, headers=headers, auto_decompress=False)
        assert response.status == 200, where
        assert "Content-Encoding" not in response.headers, where
        expected_size = listed.size
        if expected_size is None:
            identity = await client.get(path, headers={"Accept-Encoding": "identity"})
            body = await identity.read()
            assert hashlib.sha256(body).hexdigest() == listed.sha256, where
            expected_size = len(body)
        assert int(response.headers["Content-Length"]) == expected_size, where
        return dict(response.headers)
    if mode == "RANGE":
        first = await client.get(path, headers={**headers, "Range": "bytes=0-9"}, auto_decompress=False)
        rest = await client.get(path, headers={**headers, "Range": "bytes=10-"}, auto_decompress=False)
        body = await first.read() + await rest.read()
        assert (first.status, rest.status) == (206, 206), where
        assert first.headers["Content-Range"] == f"bytes 0-9/{len(body)}", where
        assert rest.headers["Content-Range"] == f"bytes 10-{len(body) - 1}/{len(body)}", where
        for part in (first, rest):
            assert "Content-Encoding" not in part.headers, where
        assert hashlib.sha256(body).hexdigest() == listed.sha256, where
        return dict(first.headers)
    response = await client.get(path, headers=headers, auto_decompress=False)
    body = await response.read()
    assert response.status == 200, where
    assert "Content-Encoding" not in response.headers, where
    assert hashlib.sha256(body).hexdigest() == listed.sha256, where
    assert listed.size is None or len(body) == listed.size, where
    return dict(response.headers)


@pytest.mark.parametrize("mode", MODES)
async def test_private_files_are_the_listed_bytes(
        client: TestClient, upload: Uploader, settings: Settings, mode: str) -> None:
    """H5 / B3: private distributions and their .metadata, neighbours planted in private storage."""
    for kind in ("wheel", "sdist"):
        assert (await upload(PRIVATE, kind)).status == 200
    files = await listing(client, "acme-widget")
    dists = (PRIVATE.wheel_filename, PRIVATE.sdist_filename)
    assert set(files) == {*dists, *(f"{filename}.metadata" for filename in dists)}
    plant_neighbours(settings.data_dir / "private" / "acme-widget", files)
    for encoding in ACCEPT_ENCODINGS:
        for filename, listed in files.items():
            headers = await check_exact(client, f"/pypi/files/acme-widget/{filename}", listed, mode, encoding)
            assert headers["X-Proxy-Source"] == "private"


@pytest.mark.parametrize("mode", MODES)
async def test_cached_upstream_files_are_the_listed_bytes(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], fake_upstream: FakeUpstream,
        mode: str) -> None:
    """H5 / B3: cached upstream files (the repro's .tar next to its .tar.gz) and .metadata files."""
    add_legacy(fake_upstream)
    settings = upstream_settings()
    client = await start_client(aiohttp_client, settings)
    wanted = {"legacy": await listing(client, "legacy"), "demo": await listing(client, "demo")}
    assert set(wanted["legacy"]) == {"legacy-1.0.tar", "legacy-1.0.tar.gz"}
    assert "demo-1.0-py3-none-any.whl.metadata" in wanted["demo"]
    for project, files in wanted.items():
        for filename in files:  # into the cache, before any neighbour exists
            response = await client.get(f"/pypi/files/{project}/{filename}", headers={"Accept-Encoding": "identity"})
            assert response.status == 200 and await response.read()
        plant_neighbours(settings.data_dir / "cache" / "files" / project, files)
    for encoding in ACCEPT_ENCODINGS:
        for project, files in wanted.items():
            for filename, listed in files.items():
                headers = await check_exact(client, f"/pypi/files/{project}/{filename}", listed, mode, encoding)
                assert headers["X-Proxy-Cache"] == "hit"


@pytest.mark.parametrize("encoding", ACCEPT_ENCODINGS)
@pytest.mark.parametrize("mode", MODES)
async def test_cold_upstream_files_are_the_listed_bytes(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], fake_upstream: FakeUpstream,
        mode: str, encoding: str) -> None:
    """H5 / B3: the first request of each file is followed while it downloads (a cold HEAD waits for
    the verified file); neighbours are in the cache before it lands there. A cold Range request
    gets the whole file (200): the proxy does not wait for the download to cut a range out."""
    add_legacy(fake_upstream)
    settings = upstream_settings()
    client = await start_client(aiohttp_client, settings)
    wanted = {"legacy": await listing(client, "legacy"), "demo": await listing(client, "demo")}
    for project, files in wanted.items():
        plant_neighbours(settings.data_dir / "cache" / "files" / project, files)
    # .tar.gz first: once it is cached, it is the .tar's real neighbour when the .tar is fetched.
    order = [("legacy", "legacy-1.0.tar.gz"), ("legacy", "legacy-1.0.tar"),
             *(("demo", filename) for filename in wanted["demo"])]
    for project, filename in order:
        listed = wanted[project][filename]
        path = f"/pypi/files/{project}/{filename}"
        if mode == "RANGE":
            response = await client.get(path, headers={"Accept-Encoding": encoding, "Range": "bytes=0-9"},
                                        auto_decompress=False)
            body = await response.read()
            assert response.status == 200 and response.headers["X-Proxy-Cache"] == "miss"
            assert "Content-Encoding" not in response.headers
            assert hashlib.sha256(body).hexdigest() == listed.sha256
            continue
        headers = await check_exact(client, path, listed, mode, encoding)
        assert headers["X-Proxy-Cache"] == "miss"


async def http10_get(client: TestClient, path: str) -> tuple[int, CIMultiDict[str], bytes]:
    """GET as an HTTP/1.0 client does (curl --http1.0, nginx's default proxy_http_version): no
    chunks, so a body without Content-Length ends where the connection does."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {path} HTTP/1.0\r\nHost: {client.host}\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()  # to the end of the connection
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = CIMultiDict((name, value) for name, _, value in (line.partition(": ") for line in lines))
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("corrupt", [False, True], ids=["good", "corrupt"])
async def test_an_http10_client_never_sees_unverified_bytes_end_cleanly(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], fake_upstream: FakeUpstream,
        corrupt: bool) -> None:
    """H5: a listing without sizes (HTML, as devpi or a static mirror give) and an upstream that
    sends no Content-Length: the size is known only at the end. An HTTP/1.0 client sees the end of
    a streamed body only as the connection closing, as for a broken one, so it gets the file once
    verified, with its length, or a clean 502 for bytes that do not match the listing."""
    fake_upstream.flavour = "html"
    fake_upstream.bad.chunked_files = True
    fake_upstream.bad.corrupt_files = corrupt
    client = await start_client(aiohttp_client, upstream_settings())
    listed = (await listing(client, "demo"))["demo-1.0-py3-none-any.whl"]
    assert listed.size is None
    status, headers, body = await http10_get(client, "/pypi/files/demo/demo-1.0-py3-none-any.whl")
    if corrupt:
        assert status == 502 and b"does not match the listing" in body
        return
    assert status == 200 and headers["X-Proxy-Cache"] == "miss"
    assert int(headers["Content-Length"]) == len(body)
    assert hashlib.sha256(body).hexdigest() == listed.sha256
