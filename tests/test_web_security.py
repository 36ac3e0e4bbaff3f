"""Issue 12 L4: security headers on every response (pages, files, JSON, errors, the web
interface), a Content-Security-Policy that lets the interface run no inline code, error texts
that echo the path as plain text, and /-/health and /-/status that tell anyone the state and the
class of upstream's errors, not their texts (which name internal hosts): those are in the log."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from proxy.core.errors import (
    IntegrityError,
    InvalidUpstreamResponse,
    UpstreamCircuitOpen,
    UpstreamError,
    UpstreamRefused,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy.storage.auth import AuthStore
from proxy.upstream.health import error_class
from proxy.web.middlewares import STRICT_POLICY, UI_POLICY
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, start_client, upload_form
from tests.fakeupstream import FakeUpstream

MakeSettings = Callable[..., Settings]
JSON_V1 = "application/vnd.pypi.simple.v1+json"
MINE = Dist("Mine", "1.0", description="A *private* package.")
DEMO_WHEEL = "demo-1.0-py3-none-any.whl"


@pytest.fixture
async def proxy(aiohttp_client: Any, upstream_settings: MakeSettings) -> TestClient:
    """The app with upstream on, one private project, and demo's page and wheel cached."""
    settings = upstream_settings()
    client = await start_client(aiohttp_client, settings)
    await asyncio.to_thread(AuthStore(settings.data_dir).add_user, "alice", PASSWORD)
    assert (await client.post("/pypi/", data=upload_form(MINE), headers=basic("alice", PASSWORD))).status == 200
    assert (await client.get("/pypi/simple/demo/")).status == 200
    await (await client.get(f"/pypi/files/demo/{DEMO_WHEEL}")).read()
    return client


UI_PAGES = ["/", "/-/projects", "/-/projects?q=mi", "/-/projects/mine/", "/-/projects/demo/", "/-/projects/nothing/",
            "/-/projects/..bad../", "/-/status", "/help/"]
# (method, path, request headers, status): everything else the server answers
OTHER = [
    ("GET", "/pypi/simple/", {}, 200), ("GET", "/pypi/simple/", {"Accept": JSON_V1}, 200),
    ("GET", "/pypi/simple/mine/", {}, 200), ("GET", "/pypi/simple/demo/", {"Accept": JSON_V1}, 200),
    ("GET", f"/pypi/files/mine/{MINE.wheel_filename}", {}, 200),
    ("GET", f"/pypi/files/mine/{MINE.wheel_filename}", {"Range": "bytes=0-9"}, 206),
    ("HEAD", f"/pypi/files/mine/{MINE.wheel_filename}", {}, 200),
    ("GET", f"/pypi/files/mine/{MINE.wheel_filename}.metadata", {}, 200),
    ("GET", f"/pypi/files/demo/{DEMO_WHEEL}", {}, 200),  # cached
    ("GET", "/pypi/files/demo/demo-1.0.tar.gz", {}, 200),  # streamed while it downloads
    ("GET", "/pypi/mine/json", {}, 200), ("GET", "/pypi/demo/1.0/json", {}, 200),
    ("GET", "/-/health", {}, 200), ("GET", "/-/metrics", {}, 200),
    ("GET", "/-/static/style.css", {}, 200), ("GET", "/-/static/ui.js", {}, 200),
    ("GET", "/pypi/simple/Mine", {}, 301), ("GET", "/pypi/mine/", {}, 302),
    ("GET", "/pypi/simple/nothing-here/", {}, 404),
    ("GET", "/pypi/simple/%3Cscript%3Ealert(1)%3C%2Fscript%3E/", {}, 404),
    ("GET", "/pypi/files/mine/%3Cb%3Enope%3C%2Fb%3E.whl", {}, 404),
    ("GET", "/no/such/route/%3Cscript%3E", {}, 404), ("GET", "/-/static/base.html", {}, 404),
    ("POST", "/pypi/simple/", {}, 405), ("POST", "/pypi/", {}, 401),
    ("GET", "/pypi/simple/nothing-here/", {"Accept": "application/x-nothing"}, 406),
]


def assert_security_headers(headers: Any, policy: str, where: str) -> None:
    assert headers["X-Content-Type-Options"] == "nosniff", where
    assert headers["X-Frame-Options"] == "DENY", where
    assert headers["Referrer-Policy"] == "same-origin", where
    assert headers["Content-Security-Policy"] == policy, where
    assert "unsafe" not in policy and "frame-ancestors 'none'" in policy and policy.startswith("default-src 'none'")


@pytest.mark.parametrize("path", UI_PAGES)
async def test_l4_the_web_interface_has_its_policy_and_no_inline_code(proxy: TestClient, path: str) -> None:
    response = await proxy.get(path)
    assert response.status in (200, 404) and response.content_type == "text/html"
    assert_security_headers(response.headers, UI_POLICY, path)
    page = await response.text()
    assert re.findall(r"<script\b[^>]*>", page) == ['<script src="/-/static/ui.js">']  # no inline script
    assert '<link rel="stylesheet" href="/-/static/style.css">' in page
    assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", page, re.IGNORECASE), path  # nor inline style


@pytest.mark.parametrize(("method", "path", "headers", "status"), OTHER,
                         ids=[f"{m} {p} {h}" for m, p, h, _ in OTHER])
async def test_l4_every_other_response_has_the_strict_policy(proxy: TestClient, method: str, path: str,
                                                             headers: dict[str, str], status: int) -> None:
    response = await proxy.request(method, path, headers=headers, allow_redirects=False)
    await response.read()
    assert response.status == status
    assert_security_headers(response.headers, STRICT_POLICY, path)
    if status >= 400:  # error texts echo the path: never HTML
        assert response.content_type == "text/plain", path


async def test_l4_not_modified_answers_carry_the_headers_too(proxy: TestClient) -> None:
    first = await proxy.get("/pypi/simple/mine/")
    again = await proxy.get("/pypi/simple/mine/", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    assert_security_headers(again.headers, STRICT_POLICY, "304")


async def test_l4_the_interfaces_assets_are_what_its_pages_load(proxy: TestClient) -> None:
    css = await proxy.get("/-/static/style.css")
    js = await proxy.get("/-/static/ui.js")
    assert css.content_type == "text/css" and ".meter rect" in await css.text()
    assert js.content_type == "text/javascript" and "navigator.clipboard" in await js.text()
    assert css.headers["Cache-Control"] == "no-cache" and "ETag" in css.headers
    assert (await proxy.get("/-/static/style.css", headers={"If-None-Match": css.headers["ETag"]})).status == 304


# What /-/health and /-/status tell anyone -------------------------------------------------------------


@pytest.mark.parametrize(("error", "shown"), [
    (UpstreamTimeout("upstream timed out: http://10.0.0.5/simple/x/"), "timeout"),
    (UpstreamUnavailable("upstream failed on http://10.0.0.5/: Cannot connect to host 10.0.0.5:80"), "unavailable"),
    (UpstreamCircuitOpen("upstream http://10.0.0.5/ is failing", 1.0, "x"), "circuit_open"),
    (UpstreamRefused("http://169.254.169.254/: not a public address", "allow_private_file_hosts"), "refused"),
    (IntegrityError("x.whl: sha256 does not match the listing"), "integrity"),
    (InvalidUpstreamResponse("upstream answered 418 for http://10.0.0.5/"), "invalid_response"),
    (UpstreamError("download abandoned"), "upstream_error"),
    (OSError(28, "No space left on device", "/srv/data/cache/tmp/x"), "ENOSPC: No space left on device"),
    (PermissionError(13, "Permission denied", "/srv/data"), "EACCES: Permission denied"),
    (ValueError("/srv/data"), "ValueError"),
])
def test_l4_an_error_is_shown_by_its_class_only(error: BaseException, shown: str) -> None:
    assert error_class(error) == shown


SECRETS = ("10.20.30.40", "169.254.169.254", "latest/meta-data", "Cannot connect", "Connect call failed")


async def test_l4_health_and_status_tell_error_classes_and_the_log_tells_the_rest(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream) -> None:
    """Three failures whose messages name internal hosts: a page redirected to an internal
    address, a file listed at the cloud metadata endpoint, an index that refuses connections."""
    fake_upstream.redirects["/simple/dep/"] = "http://10.20.30.40:8080/simple/dep/"
    fake_upstream.file_urls["demo-1.0.tar.gz"] = "http://169.254.169.254/latest/meta-data/demo-1.0.tar.gz"
    client = await start_client(aiohttp_client, upstream_settings({"retries": 0, "file_hosts": ["*"]}))
    with structlog.testing.capture_logs() as logged:
        assert (await client.get("/pypi/simple/dep/")).status == 502
        assert (await client.get("/pypi/files/demo/demo-1.0.tar.gz")).status == 502
        health = await (await client.get("/-/health")).json()
        assert (health["upstream"]["state"], health["upstream"]["last_error"]) == ("failing", "refused")
        assert health["upstream"]["breaker"]["last_error"] == "refused"
        await fake_upstream.stop()
        assert (await client.get("/pypi/simple/nothing-cached/")).status == 502
        health_text = await (await client.get("/-/health")).text()
        status_page = await (await client.get("/-/status")).text()
    health = json.loads(health_text)
    assert health["upstream"]["last_error"] == "unavailable"
    assert health["upstream"]["url"] == fake_upstream.url + "/"  # the configured index, as the home page shows
    for secret in SECRETS:
        assert secret not in health_text and secret not in status_page, secret
    assert re.findall(r"<br>([a-z_]+)</li>", status_page) == ["unavailable", "refused", "refused"]  # newest first
    told = json.dumps(logged, default=str)
    for secret in ("10.20.30.40", "169.254.169.254", "Connect call failed"):
        assert secret in told, secret


async def test_l4_a_local_storage_failure_is_told_by_its_errno_not_its_path(
        aiohttp_client: Any, upstream_settings: MakeSettings) -> None:
    from proxy.web.keys import CATALOG

    client = await start_client(aiohttp_client, upstream_settings())
    health = client.server.app[CATALOG].upstreams.health  # type: ignore[union-attr]
    health.storage_failed("file", OSError(28, "No space left on device", "/srv/secret/data/cache/tmp/x"))
    body = await (await client.get("/-/health")).json()
    assert body["storage"]["last_cache_write_failure"]["error"] == "ENOSPC: No space left on device"
    status_page = await (await client.get("/-/status")).text()
    assert "ENOSPC: No space left on device" in status_page and "/srv/secret" not in status_page


async def test_l4_circuit_open_answers_tell_the_class_of_the_last_error(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream) -> None:
    fake_upstream.redirects.update({f"/simple/p{i}/": "http://10.20.30.40/" for i in range(3)})
    client = await start_client(aiohttp_client, upstream_settings({"retries": 0, "breaker_threshold": 2}))
    for i in range(3):
        response = await client.get(f"/pypi/simple/p{i}/")
        assert response.status == 502
    text = await response.text()
    assert "is failing since" in text and "(refused)" in text and "10.20.30.40" not in text
