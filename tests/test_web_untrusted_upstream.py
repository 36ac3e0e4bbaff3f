"""Nothing upstream says is trusted (issue 12 M5, M7), through the real app and FakeUpstream.

M7: a listing (or a redirect) may point a file anywhere, internal services included; only the
index's origin and the configured file hosts on public addresses are fetched from, and only
files whose listed hash can be checked are cached. Each refusal is a 502 naming the rule;
nothing is asked of the refused URL and nothing is cached. (/work/shared/repro/m7_ssrf.sh)

M5: a malformed answer (a redirect anywhere but the index's origin or to an unreadable URL, a
loop, an unreadable page) is an invalid-upstream error: the cached page is served stale and
upstream is left alone for retry_after_error; files get a clean 502, never a 500.
(/work/shared/repro/m5_m6_stale.sh)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from tests.builders import Dist
from tests.conftest import start_client
from tests.fakeupstream import FakeUpstream
from tests.waiting import until

MakeSettings = Callable[..., Settings]
JSON_V1 = "application/vnd.pypi.simple.v1+json"
DEMO_WHEEL = "demo-1.0-py3-none-any.whl"
DEMO_SDIST = "demo-1.0.tar.gz"
SECRET = "db_password=hunter2\n"


class InternalService:
    """A service on loopback the proxy must never be made to read (a database, a metadata API)."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._secret)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def _secret(self, request: web.Request) -> web.Response:
        self.asked.append(request.path)
        return web.Response(text=SECRET)

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def internal() -> AsyncIterator[InternalService]:
    service = InternalService()
    await service.start()
    yield service
    await service.stop()


def cached_files(settings: Settings) -> list[str]:
    root = settings.data_dir / "cache" / "files"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def page_of(client: TestClient, name: str = "demo") -> tuple[int, str, dict[str, Any]]:
    response = await client.get(f"/pypi/simple/{name}/", headers={"Accept": JSON_V1})
    body = await response.json(content_type=None) if response.status == 200 else {}
    return response.status, response.headers.get("X-Proxy-Cache", ""), body


# M7: where files are fetched from ---------------------------------------------------------------------


# (where the listing points the sdist, upstream settings, the rule that refuses it)
SSRF_CASES = [
    pytest.param("http://127.0.0.1:{port}/secret", {}, "allow_private_file_hosts", id="index-host-other-port"),
    pytest.param("http://localhost:{port}/secret", {}, "file_hosts", id="unlisted-host"),
    pytest.param("http://localhost:{port}/secret", {"file_hosts": ["localhost"]}, "allow_private_file_hosts",
                 id="allowed-name-resolving-to-loopback"),
    pytest.param("http://[::1]:{port}/secret", {"file_hosts": ["::1"]}, "allow_private_file_hosts", id="ipv6-loopback"),
    pytest.param("http://[::ffff:127.0.0.1]:{port}/secret", {"file_hosts": ["*"]}, "allow_private_file_hosts",
                 id="ipv4-mapped-loopback"),
    pytest.param("http://169.254.169.254/latest/meta-data/", {"file_hosts": ["*"]}, "allow_private_file_hosts",
                 id="link-local-metadata"),
    pytest.param("http://10.0.0.1:{port}/secret", {"file_hosts": ["*"]}, "allow_private_file_hosts", id="private"),
    pytest.param("http://0.0.0.0:{port}/secret", {"file_hosts": ["*"]}, "allow_private_file_hosts", id="unspecified"),
    pytest.param("https://evil.example/demo-1.0.tar.gz", {}, "file_hosts", id="another-public-host"),
]


@pytest.mark.parametrize(("listed", "upstream", "rule"), SSRF_CASES)
@pytest.mark.parametrize("flavour", ["json", "html"])
async def test_m7_a_listed_file_url_to_a_host_not_allowed_is_refused(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
        internal: InternalService, listed: str, upstream: dict[str, Any], rule: str, flavour: str) -> None:
    fake_upstream.flavour = flavour
    fake_upstream.file_urls[DEMO_SDIST] = listed.format(port=internal.port)
    settings = upstream_settings(upstream)
    client = await start_client(aiohttp_client, settings)
    response = await client.get(f"/pypi/files/demo/{DEMO_SDIST}")
    assert response.status == 502
    body = await response.text()
    assert response.headers["Content-Type"].startswith("text/plain")
    assert f"({rule})" in body and "nothing was fetched or cached" in body
    assert internal.asked == [] and cached_files(settings) == []
    assert (await client.get(f"/pypi/files/demo/{DEMO_WHEEL}")).status == 200  # its neighbour is fine


@pytest.mark.parametrize(("location", "upstream", "rule"), SSRF_CASES)
async def test_m7_each_redirect_of_a_file_is_checked_too(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
        internal: InternalService, location: str, upstream: dict[str, Any], rule: str) -> None:
    """The listed URL is on the index's origin; its redirect leads elsewhere."""
    fake_upstream.redirects[f"/files/{DEMO_SDIST}"] = location.format(port=internal.port)
    settings = upstream_settings(upstream)
    client = await start_client(aiohttp_client, settings)
    response = await client.get(f"/pypi/files/demo/{DEMO_SDIST}")
    assert response.status == 502 and f"({rule})" in await response.text()
    assert fake_upstream.requests[f"/files/{DEMO_SDIST}"] == 1  # refused at once, not retried
    assert internal.asked == [] and cached_files(settings) == []


async def test_m7_metadata_range_reads_and_provenance_go_through_the_same_policy(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
        internal: InternalService) -> None:
    """A wheel listed without metadata: this server reads its METADATA by ranges (or downloads
    it); a provenance URL is listed on its own. Each is a URL upstream chose."""
    (wheel,) = fake_upstream.add(Dist("lazy", "1.0"), sdist=False, metadata=False)
    fake_upstream.file_urls[wheel.filename] = f"http://127.0.0.1:{internal.port}/lazy.whl"
    fake_upstream.provenance[DEMO_WHEEL] = b'{"version": 1}'
    fake_upstream.redirects[f"/integrity/{DEMO_WHEEL}/provenance"] = f"http://localhost:{internal.port}/p"
    settings = upstream_settings()
    client = await start_client(aiohttp_client, settings)
    for path, rule in ((f"/pypi/files/lazy/{wheel.filename}.metadata", "allow_private_file_hosts"),
                       (f"/pypi/files/demo/{DEMO_WHEEL}.provenance", "file_hosts")):
        response = await client.get(path)
        assert response.status == 502 and f"({rule})" in await response.text(), path
    assert internal.asked == [] and cached_files(settings) == []


async def test_m7_the_repro_secret_is_neither_served_nor_cached(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
        internal: InternalService, caplog: pytest.LogCaptureFixture) -> None:
    """m7_ssrf.sh: a file listed without a hash at a loopback URL with a query (a signed URL's)."""
    (ssrf,) = fake_upstream.add(Dist("ssrf", "1.0"), wheel=False)
    fake_upstream.file_urls[ssrf.filename] = f"http://127.0.0.1:{internal.port}/secret?token=abc"
    fake_upstream.unhashed.add(ssrf.filename)
    settings = upstream_settings({"cache_unverified_files": True})  # so the host rule is what refuses it
    client = await start_client(aiohttp_client, settings)
    response = await client.get(f"/pypi/files/ssrf/{ssrf.filename}")
    body = await response.text()
    assert response.status == 502 and "hunter2" not in body and "token" not in body
    assert internal.asked == [] and cached_files(settings) == []


# M7: files that cannot be verified ---------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["json", "html"])
async def test_m7_a_file_listed_without_a_hash_is_refused_unless_configured(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream, flavour: str) -> None:
    fake_upstream.flavour = flavour
    fake_upstream.unhashed.update({DEMO_SDIST, DEMO_WHEEL})
    fake_upstream.unhashed_metadata.add(DEMO_WHEEL)  # so it would be made from the unverifiable wheel
    settings = upstream_settings()
    client = await start_client(aiohttp_client, settings)
    for filename in (DEMO_SDIST, DEMO_WHEEL, DEMO_WHEEL + ".metadata"):
        response = await client.get(f"/pypi/files/demo/{filename}")
        assert response.status == 502, filename
        assert "(cache_unverified_files)" in await response.text()
    assert not [path for path in fake_upstream.requests if path.startswith("/files/")]
    assert cached_files(settings) == []

    allowed = upstream_settings({"cache_unverified_files": True})
    client = await start_client(aiohttp_client, allowed)
    response = await client.get(f"/pypi/files/demo/{DEMO_SDIST}")
    assert await response.read() == fake_upstream.file(DEMO_SDIST).content
    await until(lambda: cached_files(allowed) == [f"demo/{DEMO_SDIST}"],
                "the sdist committed after its last byte")


@pytest.mark.parametrize("flavour", ["json", "html"])
async def test_m7_metadata_offered_without_a_hash_is_made_from_the_verified_wheel(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream, flavour: str) -> None:
    """PEP 658 allows ``core-metadata: true``: upstream's unverifiable file is not fetched; the
    wheel's own METADATA (the wheel's hash is listed) is served instead."""
    fake_upstream.flavour = flavour
    fake_upstream.unhashed_metadata.add(DEMO_WHEEL)
    wheel = fake_upstream.file(DEMO_WHEEL)
    settings = upstream_settings()
    client = await start_client(aiohttp_client, settings)
    response = await client.get(f"/pypi/files/demo/{DEMO_WHEEL}.metadata")
    assert response.status == 200 and await response.read() == wheel.metadata
    assert fake_upstream.requests[f"/files/{DEMO_WHEEL}.metadata"] == 0
    assert fake_upstream.range_requests[f"/files/{DEMO_WHEEL}"] > 0  # read from the wheel


# M5: malformed answers for pages: the stale page, and back-off ---------------------------------------


PAGE_FAILURES = [
    pytest.param({"/simple/demo/": "file:///etc/passwd"}, id="redirect-file"),
    pytest.param({"/simple/demo/": "ftp://127.0.0.1/simple/demo/"}, id="redirect-ftp"),
    pytest.param({"/simple/demo/": "data:,%7B%7D"}, id="redirect-data"),
    pytest.param({"/simple/demo/": "javascript:alert(1)"}, id="redirect-javascript"),
    pytest.param({"/simple/demo/": "http://[::1"}, id="redirect-malformed"),
    pytest.param({"/simple/demo/": "http://127.0.0.1:99999/simple/demo/"}, id="redirect-bad-port"),
    pytest.param({"/simple/demo/": "//127.0.0.2:9/simple/demo/"}, id="redirect-other-host"),
    pytest.param({"/simple/demo/": "/simple/demo/"}, id="redirect-loop"),
    pytest.param({f"/simple/r{i}/": f"/simple/r{i + 1}/" for i in range(8)} | {"/simple/demo/": "/simple/r0/"},
                 id="redirect-too-many"),
]


@pytest.mark.parametrize("redirects", PAGE_FAILURES)
async def test_m5_a_bad_page_redirect_serves_the_stale_page_and_backs_off(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
        redirects: dict[str, str]) -> None:
    settings = upstream_settings({"fresh_for": 0, "retry_after_error": 600, "retries": 0})
    client = await start_client(aiohttp_client, settings)
    status, _, fresh = await page_of(client)
    assert status == 200
    fake_upstream.redirects.update(redirects)
    await assert_stale_then_left_alone(client, fake_upstream, fresh)


async def assert_stale_then_left_alone(client: TestClient, upstream: FakeUpstream, fresh: dict[str, Any]) -> None:
    """The cached page is served stale; after one failed refresh upstream is not asked again
    within retry_after_error (the back-off)."""
    before = sum(upstream.requests.values())
    status, cache, stale = await page_of(client)
    assert (status, cache) == (200, "stale") and stale == fresh
    asked = sum(upstream.requests.values())
    assert asked > before  # the refresh was tried...
    for _ in range(2):
        status, cache, stale = await page_of(client)
        assert (status, cache) == (200, "stale") and stale == fresh
    assert sum(upstream.requests.values()) == asked  # ...and not again


@pytest.mark.parametrize("redirects", PAGE_FAILURES)
async def test_m5_a_bad_page_redirect_with_nothing_cached_is_a_clean_502(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
        redirects: dict[str, str]) -> None:
    fake_upstream.redirects.update(redirects)
    client = await start_client(aiohttp_client, upstream_settings({"retries": 0}))
    response = await client.get("/pypi/simple/demo/")
    assert response.status == 502 and (await response.text()).startswith("Upstream ")


async def test_m5_a_relative_redirect_on_the_index_origin_is_followed(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream) -> None:
    fake_upstream.redirects["/simple/Demo/"] = "../demo/"
    fake_upstream.redirects["/simple/demo-old/"] = "/simple/demo/"
    client = await start_client(aiohttp_client, upstream_settings())
    status, _, page = await page_of(client, "demo-old")
    assert status == 200 and [f["filename"] for f in page["files"]] == [DEMO_WHEEL, DEMO_SDIST]


@pytest.mark.parametrize("body", [
    pytest.param(b'{"files":[],"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}", id="deep-json"),
    pytest.param(b"<html>not json</html>", id="not-json"),
    pytest.param(b"[1, 2, 3]", id="not-an-object"),
    pytest.param(b'{"meta": {"api-version": "2.0"}, "files": []}', id="unknown-major-version"),
    pytest.param(b'{"meta": {"api-version": "1.0"}}', id="no-files"),
    pytest.param(b"\xff\xfe{", id="not-utf8"),
])
async def test_m5_an_unreadable_page_serves_the_stale_page_and_backs_off(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream, body: bytes) -> None:
    settings = upstream_settings({"fresh_for": 0, "retry_after_error": 600, "retries": 0})
    client = await start_client(aiohttp_client, settings)
    _, _, fresh = await page_of(client)
    fake_upstream.bad.page_body = body
    await assert_stale_then_left_alone(client, fake_upstream, fresh)


async def test_m5_one_entry_with_an_unreadable_url_is_skipped_not_fatal(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream) -> None:
    fake_upstream.file_urls[DEMO_SDIST] = "http://[::1"
    client = await start_client(aiohttp_client, upstream_settings())
    status, cache, page = await page_of(client)
    assert (status, cache) == (200, "miss")
    assert [f["filename"] for f in page["files"]] == [DEMO_WHEEL]


# M5: malformed answers for files: a clean 502 ----------------------------------------------------------


@pytest.mark.parametrize("location", [
    "file:///etc/passwd", "ftp://127.0.0.1/x", "data:,x", "javascript:alert(1)", "http://[::1",
    "http://127.0.0.1:99999/x", f"/files/{DEMO_SDIST}",
])
async def test_m5_a_bad_file_redirect_is_a_clean_502(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream, location: str) -> None:
    fake_upstream.redirects[f"/files/{DEMO_SDIST}"] = location
    settings = upstream_settings({"retries": 0})
    client = await start_client(aiohttp_client, settings)
    for path in (f"/pypi/files/demo/{DEMO_SDIST}", f"/pypi/files/demo/{DEMO_SDIST}"):
        response = await client.get(path)
        assert response.status == 502 and (await response.text()).startswith("Upstream ")
    assert cached_files(settings) == []
