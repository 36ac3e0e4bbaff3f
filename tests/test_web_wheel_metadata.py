"""Core metadata for every upstream wheel, file URLs as URLs, and what upstream says passed on
(STANDARDS B7, C4, H3, B8-B10, C6), against the real app and a fake upstream on loopback."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from tests.builders import Dist
from tests.conftest import start_client
from tests.fakeupstream import JSON_V1, FakeUpstream

BIG = Dist("big", "1.0", requires_dist=["dep>=2"], summary="Grüße", payload=2 * 1024**2)
WHEEL = BIG.wheel_filename
META_URL = f"/pypi/files/big/{WHEEL}.metadata"


@pytest.fixture
async def proxy(aiohttp_client: Any, upstream_settings: Callable[..., Settings]) -> TestClient:
    return await start_client(aiohttp_client, upstream_settings())


async def page(proxy: TestClient, name: str) -> dict[str, Any]:
    response = await proxy.get(f"/pypi/simple/{name}/", headers={"Accept": JSON_V1})
    assert response.status == 200, await response.text()
    data: dict[str, Any] = json.loads(await response.read())
    return data


async def body(proxy: TestClient, path: str) -> bytes:
    response = await proxy.get(path)
    assert response.status == 200, await response.text()
    return await response.read()


def wheel_path(upstream: FakeUpstream, filename: str = WHEEL) -> str:
    return f"/files/{filename}"


@pytest.mark.parametrize("flavour", ["json", "html"])
async def test_b7_every_wheel_offers_metadata_read_by_ranges_not_by_download(
        proxy: TestClient, fake_upstream: FakeUpstream, flavour: str) -> None:
    """An upstream without PEP 658 files (devpi, Nexus, HTML mirrors): the page offers each wheel's
    metadata anyway, and it is read from two byte ranges of the 2 MiB wheel, not by downloading it."""
    fake_upstream.flavour = flavour
    fake_upstream.add(BIG, metadata=False)
    files = {f["filename"]: f for f in (await page(proxy, "big"))["files"]}
    assert files[WHEEL]["core-metadata"] is True
    assert files[BIG.sdist_filename]["core-metadata"] is False  # sdists: not offered, as on PyPI
    assert await body(proxy, META_URL) == BIG.metadata()
    assert fake_upstream.range_requests[wheel_path(fake_upstream)] == 2
    assert fake_upstream.bytes_sent[wheel_path(fake_upstream)] < 256 * 1024
    assert await body(proxy, META_URL) == BIG.metadata()  # cached: upstream not asked again
    assert fake_upstream.range_requests[wheel_path(fake_upstream)] == 2


async def test_b7_html_metadata_attribute_offers_it_too(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.add(BIG, metadata=False)
    response = await proxy.get("/pypi/simple/big/", headers={"Accept": "text/html"})
    html = await response.text()
    assert f'>{WHEEL}<' in html
    assert 'data-core-metadata="true" data-dist-info-metadata="true"' in html


async def test_b7_the_verified_wheel_replaces_metadata_that_ranges_lied_about(
        proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    """Metadata read by ranges is provisional: once the wheel is downloaded and its hash verified,
    the METADATA it holds is what is kept and served."""
    fake_upstream.add(BIG, metadata=False)
    liar = Dist("big", "1.0", requires_dist=["dep>=3"], summary="Grüße", payload=2 * 1024**2)
    assert len(liar.wheel()) == len(BIG.wheel())
    fake_upstream.range_content[WHEEL] = liar.wheel()
    assert await body(proxy, META_URL) == liar.metadata()
    wheel = await body(proxy, f"/pypi/files/big/{WHEEL}")
    assert hashlib.sha256(wheel).hexdigest() == hashlib.sha256(BIG.wheel()).hexdigest()
    assert await body(proxy, META_URL) == BIG.metadata()


async def test_b7_ranges_of_another_size_than_listed_are_refused(
        proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.add(BIG, metadata=False)
    fake_upstream.range_content[WHEEL] = BIG.wheel() + b"\0"
    response = await proxy.get(META_URL)
    assert response.status == 502
    assert "listed 2098377" in await response.text()


async def test_b7_without_range_support_the_wheel_is_downloaded_and_serves_both(
        proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    """The first wheel costs one request answered 200 (abandoned at once) and one download; then
    the upstream is known to ignore ranges and the next wheel is downloaded straight away."""
    fake_upstream.ranges = False
    fake_upstream.add(BIG, metadata=False)
    other = Dist("other", "1.0", payload=1024**2)
    fake_upstream.add(other, metadata=False)
    assert await body(proxy, META_URL) == BIG.metadata()
    assert await body(proxy, f"/pypi/files/big/{WHEEL}") == BIG.wheel()
    assert fake_upstream.requests[wheel_path(fake_upstream)] == 2
    assert await body(proxy, f"/pypi/files/other/{other.wheel_filename}.metadata") == other.metadata()
    assert fake_upstream.requests[f"/files/{other.wheel_filename}"] == 1


async def test_b7_a_cached_wheel_gives_its_metadata_without_asking_upstream(
        proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.add(BIG, metadata=False)
    await body(proxy, f"/pypi/files/big/{WHEEL}")
    asked = sum(fake_upstream.requests.values())
    assert await body(proxy, META_URL) == BIG.metadata()
    assert sum(fake_upstream.requests.values()) == asked


async def test_b7_upstream_metadata_is_used_when_upstream_offers_it(
        proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.add(BIG)
    (wheel,) = [f for f in (await page(proxy, "big"))["files"] if f["filename"] == WHEEL]
    assert wheel["core-metadata"] == {"sha256": hashlib.sha256(BIG.metadata()).hexdigest()}
    assert await body(proxy, META_URL) == BIG.metadata()
    assert fake_upstream.requests[f"/files/{WHEEL}.metadata"] == 1
    assert fake_upstream.range_requests[wheel_path(fake_upstream)] == 0


async def test_b7_no_metadata_is_offered_for_an_unlisted_file_or_an_sdist(
        proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.add(BIG, metadata=False)
    assert (await proxy.get(f"/pypi/files/big/{BIG.sdist_filename}.metadata")).status == 404
    assert (await proxy.get("/pypi/files/big/big-9.9-py3-none-any.whl.metadata")).status == 404


# File URLs are URLs (H3) ----------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["json", "html"])
async def test_h3_signed_file_urls_keep_their_query_for_the_file_and_its_metadata(
        proxy: TestClient, fake_upstream: FakeUpstream, flavour: str) -> None:
    """pip#12033: ``.metadata`` is appended to the path; the query (a signature) stays a query."""
    fake_upstream.flavour = flavour
    fake_upstream.file_query = "tok=abc&exp=1"
    fake_upstream.add(BIG)
    assert await body(proxy, META_URL) == BIG.metadata()
    assert await body(proxy, f"/pypi/files/big/{WHEEL}") == BIG.wheel()
    files = [url for url in fake_upstream.seen_urls if url.startswith("/files/")]
    assert sorted(files) == sorted([f"/files/{WHEEL}.metadata?tok=abc&exp=1", f"/files/{WHEEL}?tok=abc&exp=1"])


async def test_h3_signed_urls_also_for_ranges(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.file_query = "tok=abc"
    fake_upstream.add(BIG, metadata=False)
    assert await body(proxy, META_URL) == BIG.metadata()
    assert {url for url in fake_upstream.seen_urls if url.startswith("/files/")} == {f"/files/{WHEEL}?tok=abc"}


# Everything upstream says survives (B8-B10, C6) ----------------------------------------------------

KEYS = {
    "tracks": ["https://other.example/simple/demo/"],
    "alternate-locations": ["https://alt.example/simple/demo/"],
    "project-status": {"status": "archived", "reason": "see demo2"},
}


@pytest.mark.parametrize("flavour", ["json", "html"])
async def test_pep_708_740_792_keys_pass_through_in_both_formats(
        proxy: TestClient, fake_upstream: FakeUpstream, flavour: str) -> None:
    fake_upstream.flavour = flavour
    fake_upstream.project_keys["demo"] = KEYS
    fake_upstream.provenance["demo-1.0-py3-none-any.whl"] = b'{"version": 1, "attestation_bundles": []}'
    data = await page(proxy, "demo")
    assert data["tracks"] == KEYS["tracks"]
    assert data["alternate-locations"] == KEYS["alternate-locations"]
    assert data["project-status"] == KEYS["project-status"]
    wheel = next(f for f in data["files"] if f["filename"] == "demo-1.0-py3-none-any.whl")
    assert wheel["provenance"] == "../../files/demo/demo-1.0-py3-none-any.whl.provenance"
    html = await (await proxy.get("/pypi/simple/demo/", headers={"Accept": "text/html"})).text()
    assert '<meta name="pypi:project-status" content="archived">' in html
    assert 'data-provenance="../../files/demo/demo-1.0-py3-none-any.whl.provenance"' in html
    provenance = await body(proxy, "/pypi/files/demo/demo-1.0-py3-none-any.whl.provenance")
    assert provenance == fake_upstream.provenance["demo-1.0-py3-none-any.whl"]
    await body(proxy, "/pypi/files/demo/demo-1.0-py3-none-any.whl.provenance")
    assert fake_upstream.requests["/integrity/demo-1.0-py3-none-any.whl/provenance"] == 1  # cached


async def test_the_api_version_is_what_the_page_fulfils(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    """H4, D1: a JSON upstream gives sizes (1.4 is claimed); an HTML-only one does not (1.0)."""
    fake_upstream.flavour = "json"
    assert (await page(proxy, "demo"))["meta"]["api-version"] == "1.4"
    fake_upstream.flavour = "html"
    fake_upstream.add(Dist("other", "1.0"))
    data = await page(proxy, "other")
    assert data["meta"]["api-version"] == "1.0"
    assert all("size" not in f for f in data["files"])


async def test_last_serial_is_kept(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.project_keys["demo"] = {"meta": {"api-version": "1.4", "_last-serial": 31337}}
    assert (await page(proxy, "demo"))["meta"] == {"api-version": "1.4", "_last-serial": 31337}


@pytest.mark.parametrize("stall", ["hang", "trickle"])
async def test_b7_a_stalled_upstream_cannot_hold_a_metadata_read(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], fake_upstream: FakeUpstream,
        stall: str) -> None:
    """Reading ranges is bounded like a page (page_deadline): a hanging or trickling upstream gives
    a clean 504, not a request held forever."""
    fake_upstream.add(BIG, metadata=False)
    proxy = await start_client(aiohttp_client, upstream_settings(
        {"page_deadline": 1, "read_timeout": 1, "retries": 0}))
    await page(proxy, "big")
    fake_upstream.bad.file_stall = stall
    fake_upstream.bad.trickle_every = 0.05
    response = await proxy.get(META_URL)
    assert response.status == 504, await response.text()
