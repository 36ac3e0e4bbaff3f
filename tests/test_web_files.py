"""Serving stored files: content types, length, ETag, Range, HEAD, what is never served (D3), and
a cached file that vanishes while being served."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from proxy.web.keys import EXECUTOR
from tests.builders import Dist
from tests.conftest import Uploader, start_client
from tests.fakeupstream import FakeUpstream
from tests.waiting import until

DIST = Dist("Acme.Widget", "1.0.0")
DEMO_WHEEL = "demo-1.0-py3-none-any.whl"


@pytest.fixture
async def published(upload: Uploader) -> Dist:
    for kind in ("wheel", "sdist"):
        assert (await upload(DIST, kind)).status == 200
    return DIST


@pytest.mark.parametrize(("attr", "kind", "content_type"), [
    ("wheel_filename", "wheel", "application/zip"),
    ("sdist_filename", "sdist", "application/gzip"),
])
async def test_file_headers(client: TestClient, published: Dist, attr: str, kind: str, content_type: str) -> None:
    """D3: Content-Type, Content-Length, ETag, immutable caching, Accept-Ranges."""
    filename = getattr(published, attr)
    response = await client.get(f"/pypi/files/acme-widget/{filename}")
    body = await response.read()
    assert response.status == 200
    assert body == (published.wheel() if kind == "wheel" else published.sdist())
    assert response.content_type == content_type
    assert int(response.headers["Content-Length"]) == len(body)
    assert response.headers["ETag"]
    assert "immutable" in response.headers["Cache-Control"]
    assert response.headers["Accept-Ranges"] == "bytes"
    conditional = await client.get(f"/pypi/files/acme-widget/{filename}", headers={"If-None-Match": response.headers["ETag"]})
    assert conditional.status == 304


async def test_range_request(client: TestClient, published: Dist) -> None:
    """D3: Range -> 206 with the exact bytes (pip's lazy wheel, uv's range reads)."""
    wheel = published.wheel()
    response = await client.get(f"/pypi/files/acme-widget/{published.wheel_filename}", headers={"Range": "bytes=-22"})
    assert response.status == 206
    assert await response.read() == wheel[-22:]
    assert response.headers["Content-Range"] == f"bytes {len(wheel) - 22}-{len(wheel) - 1}/{len(wheel)}"


async def test_head_on_file(client: TestClient, published: Dist) -> None:
    response = await client.head(f"/pypi/files/acme-widget/{published.wheel_filename}")
    assert response.status == 200
    assert int(response.headers["Content-Length"]) == len(published.wheel())


async def test_metadata_file(client: TestClient, published: Dist) -> None:
    """PEP 658: the .metadata file beside the distribution."""
    response = await client.get(f"/pypi/files/acme-widget/{published.wheel_filename}.metadata")
    assert response.status == 200
    assert await response.read() == published.metadata()
    assert response.content_type in ("text/plain", "application/octet-stream")


@pytest.mark.parametrize("path", [
    "/pypi/files/acme-widget/acme_widget-9.9-py3-none-any.whl",
    "/pypi/files/acme-widget/project.json",
    "/pypi/files/acme-widget/..%2Fproject.json",
    "/pypi/files/acme-widget/%2E%2E",
    "/pypi/files/nothing/acme_widget-1.0.0-py3-none-any.whl",
    "/pypi/files/acme-widget/.lock",
])
async def test_unlisted_paths_are_404(client: TestClient, published: Dist, path: str) -> None:
    """Only files the index lists are served: never project.json, never a path outside."""
    response = await client.get(path)
    assert response.status == 404


async def test_file_on_disk_but_not_in_index_is_not_served(client: TestClient, published: Dist, settings: Settings) -> None:
    """Storage: a crash between writing a file and the index leaves nothing half-listed."""
    directory = settings.data_dir / "private" / "acme-widget"
    orphan = directory / "acme_widget-2.0-py3-none-any.whl"
    orphan.write_bytes(b"half an upload")
    assert (await client.get(f"/pypi/files/acme-widget/{orphan.name}")).status == 404
    index = json.loads((directory / "project.json").read_bytes())
    assert orphan.name not in {f["filename"] for f in index["files"]}


async def test_non_normalised_project_in_file_url_redirects(client: TestClient, published: Dist) -> None:
    response = await client.get(f"/pypi/files/Acme.Widget/{published.wheel_filename}", allow_redirects=False)
    assert response.status == 301
    assert response.headers["Location"] == f"/pypi/files/acme-widget/{published.wheel_filename}"


async def test_a_cached_file_evicted_between_look_up_and_open_is_fetched_again(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], fake_upstream: FakeUpstream) -> None:
    """Issue 11 D: another server process may evict a cached file the moment after this one
    found it (pins are per process). The open then fails: that is a re-fetch, never a 500 (nor a
    404 for a file the index lists). A second server on the same data directory (another worker:
    its open-file cache is empty) opens on a miss in the app's executor; holding every thread of
    it keeps the request between look-up and open meanwhile."""
    wheel = fake_upstream.file(DEMO_WHEEL)
    path = f"/pypi/files/demo/{DEMO_WHEEL}"
    first = await start_client(aiohttp_client, upstream_settings())
    await first.get("/pypi/simple/demo/")
    assert await (await first.get(path)).read() == wheel.content
    client = await start_client(aiohttp_client, upstream_settings())
    cached = upstream_settings().data_dir / "cache" / "files" / "demo" / DEMO_WHEEL
    executor = client.server.app[EXECUTOR]
    gate = threading.Event()
    loop = asyncio.get_running_loop()
    held = [loop.run_in_executor(executor, gate.wait) for _ in range(executor._max_workers)]
    request = asyncio.ensure_future(client.get(path))
    await until(lambda: executor._work_queue.qsize() > 0, "the open of the cached file queued")
    cached.unlink()  # evicted by another process
    gate.set()
    await asyncio.gather(*held)
    response = await request
    assert response.status == 200 and response.headers["X-Proxy-Cache"] == "miss"
    assert await response.read() == wheel.content
    assert fake_upstream.requests[f"/files/{DEMO_WHEEL}"] == 2


async def test_validators_of_a_private_file(client: TestClient, published: Dist) -> None:
    """RFC 9110 on a private file: its ETag is the sha256 its index lists; Last-Modified and
    If-Modified-Since; If-Range by ETag or exact date; 412 and 416 (with the length)."""
    wheel = published.wheel()
    path = f"/pypi/files/acme-widget/{published.wheel_filename}"
    response = await client.get(path)
    assert response.headers["ETag"] == f'"{hashlib.sha256(wheel).hexdigest()}"'
    modified = response.headers["Last-Modified"]
    assert (await client.get(path, headers={"If-Modified-Since": modified})).status == 304
    for if_range, status in ((response.headers["ETag"], 206), (modified, 206), ('"other"', 200),
                             ("Thu, 01 Jan 2004 00:00:00 GMT", 200)):
        ranged = await client.get(path, headers={"Range": "bytes=0-9", "If-Range": if_range})
        assert ranged.status == status and await ranged.read() == (wheel[:10] if status == 206 else wheel)
    assert (await client.get(path, headers={"If-Match": '"other"'})).status == 412
    assert (await client.get(path, headers={"If-Match": response.headers["ETag"]})).status == 200
    beyond = await client.get(path, headers={"Range": f"bytes={len(wheel)}-"})
    assert beyond.status == 416 and beyond.headers["Content-Range"] == f"bytes */{len(wheel)}"
    several = await client.get(path, headers={"Range": "bytes=0-1,5-6"})  # one range only: all of it
    assert several.status == 200 and await several.read() == wheel


async def test_a_private_file_of_another_size_than_listed_is_never_sent(
        client: TestClient, published: Dist, settings: Settings) -> None:
    """H5: bytes the index does not list are a 500 naming the damaged file, not a download."""
    stored = settings.data_dir / "private" / "acme-widget" / published.wheel_filename
    stored.write_bytes(published.wheel() + b"tail")
    response = await client.get(f"/pypi/files/acme-widget/{published.wheel_filename}")
    text = await response.text()
    assert response.status == 500 and f"private/acme-widget/{published.wheel_filename}" in text
    assert "corrupt" in text


async def test_a_cached_file_keeps_the_etag_aiohttp_gave_it(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], fake_upstream: FakeUpstream) -> None:
    """Cached files' ETags are what FileResponse made (mtime_ns-size): clients' copies stay valid."""
    client = await start_client(aiohttp_client, upstream_settings())
    path = f"/pypi/files/demo/{DEMO_WHEEL}"
    assert await (await client.get(path)).read() == fake_upstream.file(DEMO_WHEEL).content
    cached = upstream_settings().data_dir / "cache" / "files" / "demo" / DEMO_WHEEL
    await until(cached.exists, "the download committed to the cache")
    found = cached.stat()
    hit = await client.get(path)
    assert hit.headers["X-Proxy-Cache"] == "hit"
    assert hit.headers["ETag"] == f'"{found.st_mtime_ns:x}-{found.st_size:x}"'
    assert (await client.get(path, headers={"If-None-Match": hit.headers["ETag"]})).status == 304
