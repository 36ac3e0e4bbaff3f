"""Upstream fallback through the real app: lazy pages, the page cache, stale-if-error, shadowing,
reserved names, files streamed and verified, single-flight. Upstream is FakeUpstream on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from proxy.upstream.tee import START_BYTES
from tests import rawhttp
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, start_client, upload_form
from tests.fakeupstream import FakeFile, FakeUpstream, free_port
from tests.waiting import until

JSON_V1 = "application/vnd.pypi.simple.v1+json"
PIP_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
DEMO_WHEEL = "demo-1.0-py3-none-any.whl"
DEMO_SDIST = "demo-1.0.tar.gz"

MakeSettings = Callable[..., Settings]


async def proxy(aiohttp_client: Any, settings: Settings) -> TestClient:
    return await start_client(aiohttp_client, settings)


async def json_page(client: TestClient, name: str) -> tuple[aiohttp.ClientResponse, dict[str, Any]]:
    response = await client.get(f"/pypi/simple/{name}/", headers={"Accept": PIP_ACCEPT})
    return response, (await response.json(content_type=None) if response.status == 200 else {})


def cached_files(settings: Settings) -> list[str]:
    root = settings.data_dir / "cache" / "files"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def leftover_temp_files(settings: Settings) -> list[Path]:
    return [p for p in (settings.data_dir / "cache" / "tmp").iterdir()]


# Pages ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["json", "html", "both"])
async def test_upstream_page_is_proxied_in_every_flavour(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream, flavour: str
) -> None:
    """G1: JSON-only, HTML-only and negotiating upstreams all become one PEP 691/503 page (C4, C5)."""
    fake_upstream.flavour = flavour
    client = await proxy(aiohttp_client, upstream_settings())
    response, page = await json_page(client, "demo")
    assert response.status == 200
    assert response.headers["X-Proxy-Source"] == "upstream"
    assert response.headers["X-Proxy-Cache"] == "miss"
    assert page["name"] == "demo" and page["versions"] == ["1.0"]
    files = {f["filename"]: f for f in page["files"]}
    wheel = fake_upstream.file(DEMO_WHEEL)
    # Links point at the proxy (issue: files through the proxy), relative to the page.
    assert files[DEMO_WHEEL]["url"] == f"../../files/demo/{DEMO_WHEEL}"
    assert files[DEMO_WHEEL]["hashes"] == {"sha256": wheel.sha256}
    assert files[DEMO_WHEEL]["core-metadata"] == {"sha256": hashlib.sha256(wheel.metadata or b"").hexdigest()}
    assert files[DEMO_SDIST]["core-metadata"] is False

    html = await client.get("/pypi/simple/demo/", headers={"Accept": "text/html"})
    text = await html.text()
    assert f'href="../../files/demo/{DEMO_WHEEL}#sha256={wheel.sha256}"' in text
    assert "data-core-metadata=" in text and "data-dist-info-metadata=" in text  # B7, PEP 714
    assert fake_upstream.requests["/simple/demo/"] == 1, "a hot page is served from the cache"


async def test_fresh_page_is_served_from_cache_then_revalidated_with_etag(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream
) -> None:
    """G3 / D2: after the fresh period, If-None-Match; upstream's 304 renews the cached page."""
    # A healthy upstream's answer is waited for (up to stale_timeout: generous here, for a loaded machine).
    client = await proxy(aiohttp_client, upstream_settings({"fresh_for": 0, "stale_timeout": 5}))
    first, _ = await json_page(client, "demo")
    second, page = await json_page(client, "demo")
    assert first.headers["X-Proxy-Cache"] == "miss"
    assert second.headers["X-Proxy-Cache"] == "revalidated"
    assert second.headers["ETag"] == first.headers["ETag"]
    assert page["files"]
    assert "If-None-Match" in fake_upstream.seen_headers[-1]
    not_modified = await client.get("/pypi/simple/demo/", headers={"Accept": PIP_ACCEPT,
                                                                  "If-None-Match": first.headers["ETag"]})
    assert not_modified.status == 304


async def test_new_upstream_release_shows_after_the_fresh_period(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream
) -> None:
    client = await proxy(aiohttp_client, upstream_settings({"fresh_for": 0, "stale_timeout": 5}))
    await json_page(client, "demo")
    fake_upstream.add(Dist("demo", "1.1"))
    response, page = await json_page(client, "demo")
    assert response.headers["X-Proxy-Cache"] == "miss"
    assert page["versions"] == ["1.0", "1.1"]


async def test_unknown_project_is_404_and_remembered(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream
) -> None:
    client = await proxy(aiohttp_client, upstream_settings({"not_found_for": 600}))
    for _ in range(3):
        response = await client.get("/pypi/simple/nothing-here/")
        assert response.status == 404
    assert fake_upstream.requests["/simple/nothing-here/"] == 1


@pytest.mark.parametrize("failure", ["down", "status-500", "status-503", "timeout", "truncated", "redirect"])
async def test_stale_if_error_serves_the_cached_page(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream, failure: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue: when upstream fails after the fresh period, the cached page is served, however old."""
    settings = upstream_settings({"fresh_for": 0, "retry_after_error": 0, "read_timeout": 0.3, "retries": 0})
    client = await proxy(aiohttp_client, settings)
    fresh, fresh_page = await json_page(client, "demo")
    await break_upstream(fake_upstream, failure)
    stale, stale_page = await json_page(client, "demo")
    assert stale.status == 200
    assert stale.headers["X-Proxy-Cache"] == "stale"
    assert stale_page == fresh_page


async def break_upstream(upstream: FakeUpstream, failure: str) -> None:
    if failure == "down":
        await upstream.stop()
    elif failure.startswith("status-"):
        upstream.bad.page_status = int(failure.removeprefix("status-"))
    elif failure == "timeout":
        upstream.bad.delay = 1.0
    elif failure == "truncated":
        upstream.bad.truncate_pages = True
        upstream.add(Dist("demo", "9.9"))  # a changed page, so no 304 short-cuts the body
    elif failure == "redirect":
        upstream.bad.redirect_pages_to = "http://127.0.0.2:9"


async def test_stale_page_survives_a_restart_with_upstream_down(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream
) -> None:
    """The page cache is on disk (diskcache): a new process serves it while upstream is down."""
    settings = upstream_settings({"fresh_for": 0})
    first = await proxy(aiohttp_client, settings)
    _, before = await json_page(first, "demo")
    await first.close()
    await fake_upstream.stop()
    second = await proxy(aiohttp_client, settings)
    response, after = await json_page(second, "demo")
    assert response.status == 200 and response.headers["X-Proxy-Cache"] == "stale"
    assert after == before


@pytest.mark.parametrize(("failure", "status"), [("down", 502), ("status-500", 502), ("timeout", 504),
                                                 ("truncated", 502), ("redirect", 502)])
async def test_nothing_cached_and_upstream_failing_is_a_clear_gateway_error(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream, failure: str,
    status: int,
) -> None:
    client = await proxy(aiohttp_client, upstream_settings({"read_timeout": 0.3, "retries": 0}))
    await break_upstream(fake_upstream, failure)
    response = await client.get("/pypi/simple/demo/")
    assert response.status == status
    assert "Upstream" in await response.text()


async def test_connection_errors_are_retried(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream
) -> None:
    client = await proxy(aiohttp_client, upstream_settings({"retries": 2}))
    fake_upstream.bad.page_status = 503
    response = await client.get("/pypi/simple/demo/")
    assert response.status == 502
    assert fake_upstream.requests["/simple/demo/"] == 3


# Merge and shadow ---------------------------------------------------------------------------------


async def test_private_project_shadows_the_public_one_in_index_and_files(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream, auth: Any
) -> None:
    """Dependency confusion: once "demo" is private nothing public of that name is served."""
    client = await proxy(aiohttp_client, upstream_settings())
    cached_before = await client.get(f"/pypi/files/demo/{DEMO_SDIST}")  # cached while still public
    assert cached_before.status == 200
    mine = Dist("Demo", "0.1")
    uploaded = await client.post("/pypi/", data=upload_form(mine), headers=basic("alice", PASSWORD))
    assert uploaded.status == 200

    response, page = await json_page(client, "demo")
    assert response.headers["X-Proxy-Source"] == "private"
    assert [f["filename"] for f in page["files"]] == [mine.wheel_filename]
    assert page["versions"] == ["0.1"]
    requests_before = sum(fake_upstream.requests.values())
    for guess in (DEMO_WHEEL, DEMO_SDIST, DEMO_WHEEL + ".metadata"):
        guessed = await client.get(f"/pypi/files/demo/{guess}")
        assert guessed.status == 404, guess
    assert sum(fake_upstream.requests.values()) == requests_before, "upstream is not even asked"


async def test_reserved_patterns_never_reach_upstream(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream, auth: Any
) -> None:
    fake_upstream.add(Dist("acme-tools", "6.6.6"))
    client = await proxy(aiohttp_client, upstream_settings({"reserved": ["ACME_*"]}))
    for path in ("/pypi/simple/acme-tools/", "/pypi/files/acme-tools/acme_tools-6.6.6.tar.gz"):
        response = await client.get(path)
        assert response.status == 404, path
    assert not any("acme" in path for path in fake_upstream.requests)
    uploaded = await client.post("/pypi/", data=upload_form(Dist("acme-tools", "1.0")),
                                 headers=basic("alice", PASSWORD))
    assert uploaded.status == 200
    response, page = await json_page(client, "acme-tools")
    assert response.headers["X-Proxy-Source"] == "private" and page["versions"] == ["1.0"]


async def test_root_lists_private_projects_and_optionally_upstreams(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream, auth: Any,
) -> None:
    fake_upstream.add(Dist("acme-secret", "1.0"))
    for list_projects, expected in ((False, ["Mine"]), (True, ["demo", "dep", "Mine"])):
        settings = upstream_settings({"list_projects": list_projects, "reserved": ["acme-*"]})
        client = await proxy(aiohttp_client, settings)
        await client.post("/pypi/", data=upload_form(Dist("Mine", "1.0")), headers=basic("alice", PASSWORD))
        response = await client.get("/pypi/simple/", headers={"Accept": JSON_V1})
        names = [p["name"] for p in (await response.json(content_type=None))["projects"]]
        assert sorted(names, key=str.lower) == sorted(expected, key=str.lower)
        assert response.headers["X-Proxy-Source"] == ("merged" if list_projects else "private")
        await client.close()


async def test_l3_the_root_page_links_only_valid_upstream_project_names(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
) -> None:
    """L3: with list_projects, upstream's names became links on this origin as they were."""
    hostile = ["javascript:alert(1)//", "<img src=x onerror=alert(1)>", "data:text/html,x", "a b", "-x", "..x"]
    for flavour in ("json", "html"):
        fake_upstream.flavour = flavour
        fake_upstream.project_names.update({f"hostile{i}": name for i, name in enumerate(hostile)})
        settings = upstream_settings({"list_projects": True})
        client = await proxy(aiohttp_client, settings)
        html = await (await client.get("/pypi/simple/", headers={"Accept": "text/html"})).text()
        hrefs = re.findall(r'href="([^"]*)"', html)
        assert hrefs == ["demo/", "dep/"], flavour
        listed = await (await client.get("/pypi/simple/", headers={"Accept": JSON_V1})).json(content_type=None)
        assert [p["name"] for p in listed["projects"]] == ["demo", "dep"]
        await client.close()
        shutil.rmtree(settings.data_dir / "cache")


async def test_l8_pages_cached_for_another_upstream_are_never_served(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
) -> None:
    """L8: after upstream.url changes, listings cached from the old upstream (whose file URLs lead
    there) are misses: the new upstream's page is fetched, and while it fails nothing is served."""
    first = await proxy(aiohttp_client, upstream_settings())
    assert (await json_page(first, "demo"))[0].status == 200
    await first.close()
    mirror = FakeUpstream()
    mirror.add(Dist("demo", "2.0"))
    await mirror.start()
    try:
        moved = await proxy(aiohttp_client, upstream_settings({"url": mirror.url}))
        response, page = await json_page(moved, "demo")  # fresh_for (600 s) has not passed: once a hit
        assert response.headers["X-Proxy-Cache"] == "miss" and page["versions"] == ["2.0"]
        assert all(f["filename"].startswith("demo-2.0") for f in page["files"])
        await moved.close()
    finally:
        await mirror.stop()
    down = await proxy(aiohttp_client, upstream_settings({"url": mirror.url.replace(str(mirror.port), str(free_port())),
                                                          "retries": 0}))
    response = await down.get("/pypi/simple/demo/")
    assert response.status == 502 and "nothing is cached" in await response.text()


# Files --------------------------------------------------------------------------------------------


async def test_file_is_streamed_verified_cached_and_then_served_from_disk(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream
) -> None:
    settings = upstream_settings()
    client = await proxy(aiohttp_client, settings)
    wheel = fake_upstream.file(DEMO_WHEEL)
    first = await client.get(f"/pypi/files/demo/{DEMO_WHEEL}")
    assert first.status == 200 and first.headers["X-Proxy-Cache"] == "miss"
    assert await first.read() == wheel.content
    assert first.headers["Content-Length"] == str(len(wheel.content))
    await fake_upstream.stop()  # later downloads need no upstream at all
    second = await client.get(f"/pypi/files/demo/{DEMO_WHEEL}")
    assert second.headers["X-Proxy-Cache"] == "hit"
    assert await second.read() == wheel.content
    partial = await client.get(f"/pypi/files/demo/{DEMO_WHEEL}", headers={"Range": "bytes=0-9"})
    assert partial.status == 206 and await partial.read() == wheel.content[:10]  # D3
    assert cached_files(settings) == [f"demo/{DEMO_WHEEL}"]
    assert leftover_temp_files(settings) == []


async def test_core_metadata_file_is_proxied_and_verified(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream
) -> None:
    """PEP 658 files of upstream files come through the proxy too."""
    fake_upstream.flavour = "html"  # and the old attribute name (PEP 714) is enough
    client = await proxy(aiohttp_client, upstream_settings())
    response = await client.get(f"/pypi/files/demo/{DEMO_WHEEL}.metadata")
    assert response.status == 200
    assert await response.read() == fake_upstream.file(DEMO_WHEEL).metadata
    missing = await client.get(f"/pypi/files/demo/{DEMO_SDIST}.metadata")  # none offered
    assert missing.status == 404


LARGE = FakeFile("large-1.0.tar.gz", os.urandom(4 * START_BYTES))  # half of it is past START_BYTES
SMALL_WHEEL = "small-1.0-py3-none-any.whl"


def part_bytes(settings: Settings) -> int:
    """Bytes in the download part files (0 while there are none)."""
    total = 0
    for part in (settings.data_dir / "cache" / "tmp").iterdir():
        with contextlib.suppress(FileNotFoundError):  # discarded meanwhile
            total += part.stat().st_size
    return total


def damaged_file(fake: FakeUpstream, size: str, listing: str, damage: str) -> FakeFile:
    """A file of ``size`` ("small": a wheel of a few KiB, below START_BYTES; "large"), listed with
    its size (PEP 691 JSON, upstream sends Content-Length) or without (HTML, chunked), that
    upstream damages from now on."""
    file = fake.add(Dist("small", "1.0"), sdist=False)[0] if size == "small" else fake.add_file("large", LARGE)
    assert (len(file.content) < START_BYTES) == (size == "small")
    fake.flavour = "json" if listing == "sized" else "html"
    fake.bad.chunked_files = listing == "unsized"
    return file


@pytest.mark.parametrize("listing", ["sized", "unsized"])
@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
@pytest.mark.parametrize("size", ["small", "large"])
async def test_a_damaged_upstream_file_gets_one_outcome_decided_by_its_size(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
    size: str, damage: str, listing: str,
) -> None:
    """Issue 13: a damaged file was a 502 or a broken 200, whichever task ran first. The response
    starts once START_BYTES are downloaded (or the file is verified): a smaller file is always
    verified first, so damaged it is a clean 502 naming the problem; a larger one damaged past
    START_BYTES is a 200 that breaks off (H5: never a clean end of unverified bytes). Never cached."""
    file = damaged_file(fake_upstream, size, listing, damage)
    project = file.filename.split("-")[0]
    settings = upstream_settings({"retries": 0})
    client = await proxy(aiohttp_client, settings)
    assert (await client.get(f"/pypi/simple/{project}/")).status == 200
    fake_upstream.bad.corrupt_files = damage == "corrupt"
    fake_upstream.bad.truncate_files = damage == "truncated"
    path = f"/pypi/files/{project}/{file.filename}"
    if size == "large" and damage == "truncated":  # the cut comes once the proxy holds the half sent
        fake_upstream.bad.truncate_hold = asyncio.Event()
        request = asyncio.ensure_future(rawhttp.request(client.host, client.port, path))
        await until(lambda: part_bytes(settings) >= len(LARGE.content) // 2,
                    "the proxy holding the half of the file upstream sent")
        fake_upstream.bad.truncate_hold.set()
        response = await request
    else:
        response = await rawhttp.request(client.host, client.port, path)
    framing = "chunked" if listing == "unsized" else "length"
    if size == "small":
        assert (response.status, response.framing, response.complete) == (502, "length", True)
        reason = "does not match the listing" if damage == "corrupt" else "Upstream failed"
        assert reason in response.body.decode(), response.body
    else:
        assert (response.status, response.framing, response.complete) == (200, framing, False)
        sent = bytes(b ^ 0xFF for b in file.content) if damage == "corrupt" else file.content
        # with a length, the last byte waits for the verification; chunked, the final chunk does
        whole = len(file.content) - (1 if listing == "sized" else 0)
        assert START_BYTES <= len(response.body) <= whole
        assert response.body == sent[:len(response.body)], "what was sent is what upstream sent"
    assert cached_files(settings) == []
    assert leftover_temp_files(settings) == [], "the part file is discarded before the client hears"
    fake_upstream.bad.corrupt_files = fake_upstream.bad.truncate_files = False
    healed = await client.get(path)
    assert await healed.read() == file.content  # nothing bad was remembered


async def test_size_mismatch_with_the_listing_is_refused_before_sending(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream
) -> None:
    settings = upstream_settings()
    client = await proxy(aiohttp_client, settings)
    await json_page(client, "demo")
    fake_upstream.file(DEMO_WHEEL).content += b"extra"  # listing cached with the old size
    response = await client.get(f"/pypi/files/demo/{DEMO_WHEEL}")
    assert response.status == 502
    assert cached_files(settings) == []


async def test_fifty_concurrent_clients_on_a_cold_file_make_one_upstream_request(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream
) -> None:
    big = Dist("big", "1.0", module_source="DATA = %r\n" % os.urandom(600_000).hex())
    (wheel, *_) = fake_upstream.add(big, sdist=False)
    fake_upstream.bad.file_chunk_pause = 0.01  # a slow download, so all fifty overlap it
    settings = upstream_settings()
    client = await proxy(aiohttp_client, settings)
    await json_page(client, "big")

    async def download() -> bytes:
        response = await client.get(f"/pypi/files/big/{wheel.filename}")
        assert response.status == 200
        return await response.read()

    bodies = await asyncio.gather(*(download() for _ in range(50)))
    assert fake_upstream.requests[f"/files/{wheel.filename}"] == 1
    assert all(body == wheel.content for body in bodies)
    assert cached_files(settings) == [f"big/{wheel.filename}"]


async def test_only_files_from_a_parsed_listing_are_fetched(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream
) -> None:
    """Never an open proxy: a filename upstream did not list is not requested from upstream."""
    client = await proxy(aiohttp_client, upstream_settings())
    for path in ("/pypi/files/demo/demo-6.6.6.tar.gz", "/pypi/files/demo/..%2Fetc%2Fpasswd",
                 "/pypi/files/nothing/nothing-1.0.tar.gz"):
        response = await client.get(path)
        assert response.status == 404, path
    assert not [p for p in fake_upstream.requests if p.startswith("/files/")]


async def test_files_redirected_to_another_host_are_followed_without_credentials(
    aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream
) -> None:
    """G2: files live elsewhere (a CDN); basic auth for a private upstream stays on its host. The
    CDN is a configured file host, here on loopback, which only allow_private_file_hosts permits."""
    cdn = FakeUpstream()
    cdn.add(Dist("demo", "1.0", requires_dist=["dep>=2"]))
    await cdn.start()
    try:
        fake_upstream.bad.redirect_files_to = cdn.origin.replace("127.0.0.1", "localhost")
        client = await proxy(aiohttp_client, upstream_settings({
            "username": "ci", "password": "s3cret", "file_hosts": ["localhost"], "allow_private_file_hosts": True}))
        response = await client.get(f"/pypi/files/demo/{DEMO_WHEEL}")
        assert await response.read() == fake_upstream.file(DEMO_WHEEL).content
        assert all("Authorization" in h for h in fake_upstream.seen_headers)
        assert cdn.seen_headers and not any("Authorization" in h for h in cdn.seen_headers)
    finally:
        await cdn.stop()


async def test_upstream_switched_off_serves_private_only(
    aiohttp_client: Any, make_settings: MakeSettings, fake_upstream: FakeUpstream
) -> None:
    client = await proxy(aiohttp_client, make_settings(upstream={"enabled": False, "url": fake_upstream.url}))
    assert (await client.get("/pypi/simple/demo/")).status == 404
    assert not fake_upstream.requests


IDENTITY = {"Accept-Encoding": "identity"}


async def test_a_large_page_is_sent_whole_in_slices(aiohttp_client: Any, upstream_settings: MakeSettings,
                                                    fake_upstream: FakeUpstream) -> None:
    """Pages above 64 KiB are written slice by slice (bounded buffers); the client sees one body.
    (Asked for uncompressed: the gzip copy of this page is below 64 KiB.)"""
    for number in range(400):
        fake_upstream.add(Dist("many", f"1.{number}"), sdist=False, metadata=False)
    client = await proxy(aiohttp_client, upstream_settings())
    for accept in (JSON_V1, "text/html"):
        response = await client.get("/pypi/simple/many/", headers={"Accept": accept, **IDENTITY})
        body = await response.read()
        assert response.status == 200 and len(body) > 64 * 1024
        assert int(response.headers["Content-Length"]) == len(body)
        assert body.count(b"many-1.") >= 400
    json_response = await client.get("/pypi/simple/many/", headers={"Accept": JSON_V1, **IDENTITY})
    json_body = await json_response.read()
    assert len(json.loads(json_body)["files"]) == 400
    head = await client.head("/pypi/simple/many/", headers={"Accept": JSON_V1, **IDENTITY})
    assert head.status == 200 and int(head.headers["Content-Length"]) == len(json_body)


# Names that are not valid project names never reach upstream (issue 12 L2, STANDARDS A2) ---------------

INVALID_NAMES = [  # around the reserved name "internal-tool": an upstream that strips or folds would find it
    "internal-tool;x", "internal-tool%20", "%20internal-tool", "-internal-tool", "internal-tool-",
    "internal%E2%80%90tool",  # U+2010 hyphen
    "internal-%C5%BFtool",  # U+017F long s: case-folds to "s" under re.IGNORECASE without re.ASCII
    "internal-tool%E2%84%AA",  # U+212A Kelvin sign: lower() makes it "k", a valid name it must not become
    "internal-tool%00", "internal%09tool", "internal-tool%3Cscript%3E", "requests-lite;x",
]


@pytest.mark.parametrize("name", INVALID_NAMES)
async def test_l2_invalid_names_get_404_without_asking_upstream(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream, name: str) -> None:
    client = await start_client(aiohttp_client, upstream_settings({"reserved": ["internal-tool"]}))
    for path in (f"/pypi/simple/{name}/", f"/pypi/files/{name}/internal_tool-1.0.tar.gz", f"/pypi/{name}/json",
                 f"/-/projects/{name}/", f"/pypi/{name}/"):
        response = await client.get(path, allow_redirects=True)
        assert response.status == 404, path
    assert sum(fake_upstream.requests.values()) == 0, fake_upstream.requests
