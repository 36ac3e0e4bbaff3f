"""PyPI's JSON API over HTTP (STANDARDS F1-F3)."""

from __future__ import annotations

import asyncio
import hashlib
import json

from aiohttp.test_utils import TestClient

from proxy.atomic import write_atomic
from proxy.config import Settings
from tests.builders import Dist
from tests.conftest import Uploader


async def test_project_json(client: TestClient, upload: Uploader) -> None:
    """F1, F2: shape, absolute URLs, digests, newest final version as info.version."""
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
    assert file["url"].startswith(str(client.make_url("/pypi/files/acme-widget/")))
    assert file["upload_time_iso_8601"].endswith("Z")
    download = await client.get(file["url"].removeprefix(str(client.make_url(""))))
    assert await download.read() == wheel


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
    from tests.conftest import start_client
    from tests.conftest import PASSWORD, basic, upload_form

    settings = make_settings(server={"public_url": "https://pypi.example.com/"})  # type: ignore[operator]
    client = await start_client(aiohttp_client, settings)
    from proxy.auth import AuthStore

    await asyncio.to_thread(AuthStore(settings.data_dir).add_user, "carol", PASSWORD)
    dist = Dist("thing", "1.0")
    assert (await client.post("/pypi/", data=upload_form(dist), headers=basic("carol", PASSWORD))).status == 200
    data = await (await client.get("/pypi/thing/json")).json()
    assert data["urls"][0]["url"] == f"https://pypi.example.com/pypi/files/thing/{dist.wheel_filename}"


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
