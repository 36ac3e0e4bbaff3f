"""PyPI's JSON API over HTTP (STANDARDS F1-F3)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from proxy.storage.atomic import write_atomic
from tests.builders import Dist
from tests.conftest import PASSWORD, Uploader, basic, start_client, upload_form
from tests.fakeupstream import FakeUpstream


async def test_project_json(client: TestClient, upload: Uploader) -> None:
    """F1, F2: shape, URLs on this server, digests, newest final version as info.version."""
    for version in ("1.0", "1.1", "2.0rc1"):
        assert (await upload(Dist("Acme.Widget", version, requires_dist=["requests>=2"]))).status == 200
    response = await client.get("/pypi/acme-widget/json")
    assert response.status == 200
    data = await response.json()
    assert data["info"]["name"] == "Acme.Widget"
    assert data["info"]["version"] == "1.1"
    assert data["info"]["requires_dist"] == ["requests>=2"]
    assert set(data["releases"]) == {"1.0", "1.1", "2.0rc1"}
    assert data["vulnerabilities"] == []
    assert isinstance(data["last_serial"], int)
    [file] = data["urls"]
    wheel = Dist("Acme.Widget", "1.1", requires_dist=["requests>=2"]).wheel()
    assert file["digests"]["sha256"] == hashlib.sha256(wheel).hexdigest()
    assert file["digests"]["md5"] == hashlib.md5(wheel).hexdigest()
    assert file["packagetype"] == "bdist_wheel"
    assert file["url"].startswith("/pypi/files/acme-widget/")  # L9: path-absolute without public_url
    assert file["upload_time_iso_8601"].endswith("Z")
    download = await client.get(file["url"])
    assert await download.read() == wheel


@pytest.mark.parametrize("path", ["/pypi/acme-widget/json", "/pypi/acme-widget/1.0/json"])
async def test_l9_no_host_header_shapes_a_json_document(client: TestClient, upload: Uploader, path: str) -> None:
    """L9: a shared cache in front keys a response on its URL, not on the Host header: a document
    built from Host would send every later client to the host one client named."""
    assert (await upload(Dist("Acme.Widget", "1.0"))).status == 200
    bodies = set()
    for host in (None, "evil.example", "evil.example:8080", "127.0.0.1:1"):
        response = await client.get(path, headers={"Host": host} if host else {})
        assert response.status == 200 and "Host" not in response.headers.get("Vary", "")
        bodies.add(await response.read())
    assert len(bodies) == 1 and b"evil.example" not in bodies.pop()
    data = await (await client.get(path)).json()
    assert data["info"]["package_url"] == "/pypi/acme-widget/" and data["info"]["release_url"] == "/pypi/acme-widget/1.0/"
    assert data["urls"][0]["url"] == f"/pypi/files/acme-widget/{Dist('Acme.Widget', '1.0').wheel_filename}"


async def test_version_json(client: TestClient, upload: Uploader) -> None:
    assert (await upload(Dist("Acme.Widget", "1.0"))).status == 200
    data = await (await client.get("/pypi/acme-widget/1.0/json")).json()
    assert data["info"]["version"] == "1.0"
    assert "releases" not in data
    assert (await client.get("/pypi/acme-widget/1.0.0/json")).status == 200, "PEP 440 equal spelling"
    assert (await client.get("/pypi/acme-widget/9.9/json")).status == 404


async def test_json_redirects_and_404(client: TestClient, upload: Uploader) -> None:
    assert (await upload(Dist("Acme.Widget", "1.0"))).status == 200
    response = await client.get("/pypi/Acme_Widget/json", allow_redirects=False)
    assert response.status == 301
    assert response.headers["Location"] == "/pypi/acme-widget/json"
    assert (await client.get("/pypi/unknown/json")).status == 404


async def test_public_url_setting_shapes_absolute_urls(aiohttp_client: object, make_settings: object, auth: object) -> None:
    from tests.conftest import PASSWORD, basic, start_client, upload_form

    settings = make_settings(server={"public_url": "https://pypi.example.com/"})  # type: ignore[operator]
    client = await start_client(aiohttp_client, settings)
    from proxy.storage.auth import AuthStore

    await asyncio.to_thread(AuthStore(settings.data_dir).add_user, "carol", PASSWORD)
    dist = Dist("thing", "1.0")
    assert (await client.post("/pypi/", data=upload_form(dist), headers=basic("carol", PASSWORD))).status == 200
    data = await (await client.get("/pypi/thing/json")).json()
    assert data["urls"][0]["url"] == f"https://pypi.example.com/pypi/files/thing/{dist.wheel_filename}"
    assert data["info"]["package_url"] == "https://pypi.example.com/pypi/thing/"
    evil = await (await client.get("/pypi/thing/json", headers={"Host": "evil.example"})).json()
    assert evil == data  # L9: the Host header does not matter


async def test_f1_new_metadata_fields_from_an_upload(client: TestClient, upload: Uploader) -> None:
    """F1 (issue 11 A2): the fields PyPI returns, read from the archive's metadata 2.4."""
    dist = Dist("Acme.Widget", "1.0", summary="Café", metadata_version="2.4", headers=[
        "Author: Jürgen", "License-Expression: mit OR apache-2.0", "License-File: LICENSE",
        "License-File: licenses/NOTICE", "Provides-Extra: Fancy_UI", "Dynamic: requires-dist",
        "Project-URL: Dokumentation für Nutzer, https://example.invalid/docs"])
    assert (await upload(dist, "sdist")).status == 200
    response = await client.get("/pypi/acme-widget/json")
    assert response.content_type == "application/json"
    info = (await response.json())["info"]
    assert (info["author"], info["summary"]) == ("Jürgen", "Café")
    assert info["license_expression"] == "MIT OR Apache-2.0"
    assert info["license_files"] == ["LICENSE", "licenses/NOTICE"]
    assert info["provides_extra"] == ["fancy-ui"]
    assert info["dynamic"] == ["Requires-Dist"]
    assert info["project_urls"] == {"Homepage": "https://example.invalid/home",
                                    "Dokumentation für Nutzer": "https://example.invalid/docs"}


async def test_project_json_written_by_an_older_version_still_serves(client: TestClient, upload: Uploader,
                                                                     settings: Settings) -> None:
    """A project.json from before dynamic/license_files existed loads; the new keys are None."""
    assert (await upload(Dist("Acme.Widget", "1.0"))).status == 200
    index = settings.data_dir / "private" / "acme-widget" / "project.json"
    data = json.loads(await asyncio.to_thread(index.read_bytes))
    for release in data["releases"]:
        del release["dynamic"], release["license_files"]
    await asyncio.to_thread(write_atomic, index, json.dumps(data).encode())
    info = (await (await client.get("/pypi/acme-widget/json")).json())["info"]
    assert (info["dynamic"], info["license_files"], info["summary"]) == (None, None, "A test package")


# Public projects: the JSON API for every project the index serves (issue 11 A3) ----------------------

PUBLIC = Dist("Pub.Lib", "2.0", summary="Café für Jürgen", requires_dist=["dep>=2"], requires_python=">=3.9")


@pytest.fixture
async def proxy(aiohttp_client: Any, upstream_settings: Callable[..., Settings], fake_upstream: FakeUpstream,
                auth: Any) -> TestClient:
    fake_upstream.add(Dist("Pub.Lib", "1.0"))
    fake_upstream.add(Dist("Pub.Lib", "3.0rc1"))
    fake_upstream.add(PUBLIC, metadata=False)  # info comes from metadata this server extracts
    fake_upstream.add(Dist("Pub.Lib", "2.1"), yanked="broken")
    return await start_client(aiohttp_client, upstream_settings({"reserved": ["acme-*"]}))


async def test_a3_public_project_json_from_the_cached_listing_and_wheel_metadata(
        proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    """F1, F2 for an upstream project: releases from the listing, info from the chosen release's
    core metadata (exact non-ASCII text), file URLs on this server, shadowing as for pages."""
    response = await proxy.get("/pypi/pub-lib/json")
    assert response.status == 200, await response.text()
    assert response.headers["X-Proxy-Source"] == "upstream"
    data = await response.json()
    info = data["info"]
    assert (info["name"], info["version"]) == ("pub-lib", "2.0")  # 2.1 yanked, 3.0rc1 a pre-release
    assert (info["summary"], info["requires_dist"], info["requires_python"]) == (
        "Café für Jürgen", ["dep>=2"], ">=3.9")
    assert info["project_urls"] == {"Homepage": "https://example.invalid/home"}
    assert set(data["releases"]) == {"1.0", "2.0", "2.1", "3.0rc1"}
    [wheel] = [f for f in data["urls"] if f["packagetype"] == "bdist_wheel"]
    assert wheel["url"] == f"/pypi/files/pub-lib/{PUBLIC.wheel_filename}"
    assert wheel["digests"]["sha256"] == hashlib.sha256(PUBLIC.wheel()).hexdigest()
    assert (wheel["size"], wheel["python_version"], wheel["upload_time_iso_8601"]) == (
        len(PUBLIC.wheel()), "py3", "2025-01-02T03:04:05.000000Z")
    assert [f["yanked_reason"] for f in data["releases"]["2.1"]] == ["broken", "broken"]
    assert {f["packagetype"] for f in data["urls"]} == {"bdist_wheel", "sdist"}
    download = await proxy.get(wheel["url"])
    assert await download.read() == PUBLIC.wheel()


async def test_a3_public_version_json_and_trailing_slashes(proxy: TestClient) -> None:
    for path in ("/pypi/pub-lib/1.0/json", "/pypi/pub-lib/1.0/json/", "/pypi/pub-lib/1.0.0/json"):
        response = await proxy.get(path)
        assert response.status == 200, path
        data = await response.json()
        assert data["info"]["version"] == "1.0" and "releases" not in data
    assert (await proxy.get("/pypi/pub-lib/json/")).status == 200
    assert (await proxy.get("/pypi/pub-lib/9.9/json")).status == 404
    assert (await proxy.get("/pypi/no-such-thing/json")).status == 404


async def test_a3_a_private_project_shadows_the_public_one_in_the_json_api(
        proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    """The security promise: once a name is private, nothing of the public project is served."""
    mine = Dist("pub_lib", "0.1")
    assert (await proxy.post("/pypi/", data=upload_form(mine), headers=basic("alice", PASSWORD))).status == 200
    data = await (await proxy.get("/pypi/pub-lib/json")).json()
    assert set(data["releases"]) == {"0.1"}
    assert (await proxy.get("/pypi/pub-lib/2.0/json")).status == 404


async def test_a3_reserved_names_are_never_looked_up(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.add(Dist("acme-internal", "1.0"))
    assert (await proxy.get("/pypi/acme-internal/json")).status == 404
    assert not any("acme" in path for path in fake_upstream.requests)


async def test_a3_upstream_outages_are_handled_as_for_pages(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], fake_upstream: FakeUpstream) -> None:
    """A cached listing is served however old while upstream fails; a never-cached one is a 502."""
    fake_upstream.add(PUBLIC)
    proxy = await start_client(aiohttp_client, upstream_settings({"fresh_for": 0, "retries": 0}))
    assert (await proxy.get("/pypi/pub-lib/json")).status == 200
    fake_upstream.bad.page_status = 503
    response = await proxy.get("/pypi/pub-lib/json")
    assert response.status == 200 and response.headers["X-Proxy-Cache"] == "stale"
    assert (await response.json())["info"]["summary"] == "Café für Jürgen"
    assert (await proxy.get("/pypi/demo/json")).status == 502


async def test_a3_html_only_upstream_without_sizes_or_times(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], fake_upstream: FakeUpstream) -> None:
    fake_upstream.flavour = "html"
    fake_upstream.add(PUBLIC, metadata=False)
    proxy = await start_client(aiohttp_client, upstream_settings())
    data = await (await proxy.get("/pypi/pub-lib/json")).json()
    assert data["info"]["summary"] == "Café für Jürgen"
    assert {(f["size"], f["upload_time"]) for f in data["urls"]} == {(None, None)}


async def test_a3_json_api_with_upstream_off_knows_private_projects_only(client: TestClient) -> None:
    assert (await client.get("/pypi/demo/json")).status == 404
