"""Compressed pages (issue 11 B7; STANDARDS C2, D2): every rendered page keeps a gzip copy, made once
per render, sent when Accept-Encoding accepts it, with its own strong ETag and ``Vary: Accept,
Accept-Encoding``; 304 per representation; HEAD like GET. Distributions never (test_web_exact_bytes)."""

from __future__ import annotations

import gzip
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from proxy.config import Settings
from proxy.core import compression
from proxy.storage.auth import AuthStore
from proxy.web.simple import SLICE
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, start_client, upload_form
from tests.fakeupstream import FakeFile, FakeUpstream

JSON = "application/vnd.pypi.simple.v1+json"
CONTENT_TYPES = [JSON, "application/vnd.pypi.simple.v1+html", "text/html"]
VARY = "Accept, Accept-Encoding"
PIP = "gzip, deflate"
UV = "gzip, br, zstd"
PLAIN = {"Accept-Encoding": "identity"}
MakeSettings = Callable[..., Settings]


@dataclass
class Site:
    client: TestClient
    path: str
    settings: Settings


async def publish(client: TestClient, dist: Dist, kind: str = "wheel") -> None:
    response = await client.post("/pypi/", data=upload_form(dist, kind), headers=basic("alice", PASSWORD))
    assert response.status == 200, await response.text()


def many_files(upstream: FakeUpstream, project: str, count: int) -> None:
    """A project of ``count`` files with random hashes (they compress like real ones: not much)."""
    for number in range(count):
        upstream.add_file(project, FakeFile(f"{project}-1.{number}.tar.gz", os.urandom(16)))


def many_projects(upstream: FakeUpstream, count: int) -> None:
    for number in range(count):
        upstream.project_names[f"project-{number}"] = f"Project_{number}"


@pytest.fixture(params=["private", "upstream", "root-merged"])
async def site(request: pytest.FixtureRequest, aiohttp_client: Any, make_settings: MakeSettings,
               upstream_settings: MakeSettings, fake_upstream: FakeUpstream, auth: AuthStore) -> Site:
    """A page of each source, big enough for a gzip copy: a private project, an upstream one, and
    the root page merging private names with upstream's list."""
    if request.param == "private":
        settings = make_settings()
        client = await start_client(aiohttp_client, settings)
        for version in ("1.0", "1.1", "1.2", "2.0"):
            await publish(client, Dist("Acme.Widget", version))
        return Site(client, "/pypi/simple/acme-widget/", settings)
    many_files(fake_upstream, "many", 30)
    many_projects(fake_upstream, 100)
    settings = upstream_settings(upstream={"list_projects": True})
    client = await start_client(aiohttp_client, settings)
    if request.param == "upstream":
        return Site(client, "/pypi/simple/many/", settings)
    await publish(client, Dist("mine", "1.0"))
    return Site(client, "/pypi/simple/", settings)


async def get(site: Site, accept: str, encoding: str | None, method: str = "GET",
              **headers: str) -> tuple[int, CIMultiDict[str], bytes]:
    sent = {"Accept": accept, **({"Accept-Encoding": encoding} if encoding is not None else {}), **headers}
    response = await site.client.request(method, site.path, headers=sent, auto_decompress=False,
                                         skip_auto_headers=["Accept-Encoding"])
    return response.status, response.headers.copy(), await response.read()


@pytest.mark.parametrize("accept", CONTENT_TYPES)
async def test_the_gzip_copy_is_the_page(site: Site, accept: str) -> None:
    """B7: pip's and uv's Accept-Encoding get the gzip copy; decompressed, it is the plain page
    byte for byte; each representation has its own strong ETag; both say Vary."""
    status, plain_headers, plain = await get(site, accept, "identity")
    assert status == 200 and "Content-Encoding" not in plain_headers
    assert len(plain) > compression.MIN_BYTES
    for encoding in (PIP, UV):
        status, headers, packed = await get(site, accept, encoding)
        assert status == 200
        assert headers["Content-Encoding"] == "gzip"
        assert headers["Vary"] == plain_headers["Vary"] == VARY
        assert headers["Content-Type"].split(";")[0] == plain_headers["Content-Type"].split(";")[0] == accept
        assert int(headers["Content-Length"]) == len(packed) < len(plain) / 2
        assert gzip.decompress(packed) == plain
        assert headers["ETag"] != plain_headers["ETag"]
        for etag in (headers["ETag"], plain_headers["ETag"]):
            assert etag.startswith('"') and etag.endswith('"'), "strong, quoted"


@pytest.mark.parametrize(("encoding", "gzipped"), [
    (PIP, True), (UV, True), ("*", True), ("x-gzip", True), ("br;q=1, gzip;q=0.5", True),
    (None, False), ("identity", False), ("br", False), ("gzip;q=0", False), ("*;q=0", False),
])
async def test_accept_encoding_chooses(site: Site, encoding: str | None, gzipped: bool) -> None:
    status, headers, body = await get(site, JSON, encoding)
    assert status == 200
    assert headers.get("Content-Encoding") == ("gzip" if gzipped else None)
    assert headers["Vary"] == VARY
    _, _, plain = await get(site, JSON, "identity")
    assert (gzip.decompress(body) if gzipped else body) == plain


async def test_not_modified_per_representation(site: Site) -> None:
    """D2: each copy revalidates with its own ETag. A client holding the plain copy gets a 304 for
    it (with that ETag) even when it would now accept gzip; one holding the gzip copy but no longer
    accepting gzip gets the plain page. Every 304 says Vary."""
    _, packed, _ = await get(site, JSON, PIP)
    _, plain, plain_body = await get(site, JSON, "identity")
    cases = [
        (PIP, packed["ETag"], 304, packed["ETag"]),
        ("identity", plain["ETag"], 304, plain["ETag"]),
        (PIP, plain["ETag"], 304, plain["ETag"]),
        (UV, f'"stale", {packed["ETag"]}', 304, packed["ETag"]),
        (PIP, "*", 304, packed["ETag"]),
        ("identity", packed["ETag"], 200, plain["ETag"]),
        (PIP, '"stale"', 200, packed["ETag"]),
    ]
    for encoding, if_none_match, status, etag in cases:
        got, headers, body = await get(site, JSON, encoding, **{"If-None-Match": if_none_match})
        where = f"{encoding} / {if_none_match}"
        assert (got, headers["ETag"], headers["Vary"]) == (status, etag, VARY), where
        if status == 304:
            assert body == b"" and "Content-Encoding" not in headers, where
        elif etag == plain["ETag"]:
            assert body == plain_body, where


@pytest.mark.parametrize("encoding", [PIP, "identity"])
async def test_head_is_get_without_the_body(site: Site, encoding: str) -> None:
    """D3: HEAD gives the headers GET would, for the same representation."""
    _, got, _ = await get(site, JSON, encoding)
    status, head, body = await get(site, JSON, encoding, method="HEAD")
    assert status == 200 and body == b""
    for name in ("Content-Length", "Content-Encoding", "Content-Type", "ETag", "Vary"):
        assert head.get(name) == got.get(name), name


def spy_on_compression(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that compress pages, one per copy made."""
    threads: list[str] = []
    compress = compression.gzipped

    def counted(body: bytes) -> bytes | None:
        threads.append(threading.current_thread().name)
        return compress(body)

    monkeypatch.setattr(compression, "gzipped", counted)
    return threads


async def test_a_big_gzip_copy_is_made_off_the_loop_and_sent_in_slices(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
        monkeypatch: pytest.MonkeyPatch) -> None:
    many_files(fake_upstream, "huge", 2500)
    site = Site(await start_client(aiohttp_client, upstream_settings()), "/pypi/simple/huge/", upstream_settings())
    threads = spy_on_compression(monkeypatch)
    _, _, plain = await get(site, JSON, "identity")
    status, headers, packed = await get(site, JSON, UV)
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert len(packed) > SLICE and int(headers["Content-Length"]) == len(packed)
    assert gzip.decompress(packed) == plain
    assert len(threads) == 1 and threads[0].startswith("pypi-proxy-io")


async def test_a_tiny_page_is_sent_plain_and_still_varies(client: TestClient) -> None:
    """Under compression.MIN_BYTES a copy does not pay: the plain page, with the same Vary."""
    await publish(client, Dist("mine", "1.0"))
    site = Site(client, "/pypi/simple/", Settings())
    status, headers, body = await get(site, JSON, PIP)
    assert status == 200 and len(body) < compression.MIN_BYTES
    assert "Content-Encoding" not in headers and headers["Vary"] == VARY
    again, not_modified, _ = await get(site, JSON, PIP, **{"If-None-Match": headers["ETag"]})
    assert (again, not_modified["Vary"], not_modified["ETag"]) == (304, VARY, headers["ETag"])


async def test_a_copy_is_made_once_per_render_and_off_the_loop(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """Made with the page, not per request; in the executor for private and root pages (an upstream
    page of up to 200 files is rendered, and compressed, on the loop: a thread hop costs more)."""
    threads = spy_on_compression(monkeypatch)
    for accept in CONTENT_TYPES:
        for _ in range(3):
            assert (await get(site, accept, UV))[0] == 200
    # Private pages were rendered at upload (before the spy); the others now: one per format.
    assert len(threads) == (0 if site.path.endswith("acme-widget/") else 3)
    if site.path == "/pypi/simple/":
        assert all(name.startswith("pypi-proxy-io") for name in threads)


async def test_the_private_copy_is_kept_on_disk_and_made_again_when_lost(
        aiohttp_client: Any, client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restart (or another worker) reads the gzip copy rendered before: same bytes, same ETag;
    a copy lost (deleted, torn by a crash) is compressed again, off the loop."""
    for version in ("1.0", "1.1", "1.2"):
        await publish(client, Dist("Acme.Widget", version))
    site = Site(client, "/pypi/simple/acme-widget/", settings)
    _, headers, packed = await get(site, JSON, PIP)
    directory = settings.data_dir / "cache" / "private-pages" / "acme-widget"
    [copy] = [p for p in directory.iterdir() if ".json-gzip." in p.name]
    assert copy.read_bytes() == packed

    restarted = Site(await start_client(aiohttp_client, settings), site.path, settings)
    status, again, body = await get(restarted, JSON, PIP, **{"If-None-Match": headers["ETag"]})
    assert (status, again["ETag"]) == (304, headers["ETag"])

    copy.unlink()
    threads = spy_on_compression(monkeypatch)
    restarted = Site(await start_client(aiohttp_client, settings), site.path, settings)
    status, again, body = await get(restarted, JSON, PIP)
    assert (status, again["ETag"], body) == (200, headers["ETag"], packed)
    assert copy.read_bytes() == packed
    assert len(threads) == 1 and threads[0].startswith("pypi-proxy-io")
