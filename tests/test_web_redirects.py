"""Every redirect the app emits honours ``[server] public_url`` (issue 11 B5, STANDARDS B3), and the
release URLs of the JSON API and the duplicate-upload message lead to a page (issue 11, from A3)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from proxy.config import Settings
from tests.builders import Dist
from tests.conftest import Uploader

DIST = Dist("Foo_Bar", "1.0")
WHEEL = DIST.wheel_filename  # foo_bar-1.0-py3-none-any.whl

# (request path, the path it leads to, status): every kind of redirect the app makes.
REDIRECTS = [
    pytest.param("/pypi/simple", "/pypi/simple/", 301, id="simple-root-slash"),
    pytest.param("/pypi/simple/Foo_Bar/", "/pypi/simple/foo-bar/", 301, id="simple-name"),
    pytest.param("/pypi/simple/Foo.Bar", "/pypi/simple/foo-bar/", 301, id="simple-name-slash"),
    pytest.param("/pypi/simple/foo-bar", "/pypi/simple/foo-bar/", 301, id="simple-slash"),
    pytest.param("/pypi/Foo_Bar/json", "/pypi/foo-bar/json", 301, id="json-name"),
    pytest.param("/pypi/FOO-bar/1.0/json", "/pypi/foo-bar/1.0/json", 301, id="json-version-name"),
    pytest.param(f"/pypi/files/Foo_Bar/{WHEEL}", f"/pypi/files/foo-bar/{WHEEL}", 301, id="file-name"),
    pytest.param(f"/pypi/files/Foo_Bar/{WHEEL}.metadata", f"/pypi/files/foo-bar/{WHEEL}.metadata", 301,
                 id="metadata-name"),
    pytest.param("/-/projects/Foo_Bar/", "/-/projects/foo-bar/", 301, id="ui-name"),
    pytest.param("/-/projects/foo-bar", "/-/projects/foo-bar/", 301, id="ui-slash"),
    pytest.param("/pypi/foo-bar/", "/-/projects/foo-bar/", 302, id="release-project"),
    pytest.param("/pypi/Foo_Bar", "/-/projects/foo-bar/", 302, id="release-project-no-slash"),
    pytest.param("/pypi/foo-bar/1.0/", "/-/projects/foo-bar/#release-1", 302, id="release-version"),
    pytest.param("/pypi/Foo.Bar/1.0.0", "/-/projects/foo-bar/#release-1", 302, id="release-version-pep440"),
    pytest.param("/help", "/help/", 301, id="help-slash"),
    pytest.param("/pypi/simple/Foo_Bar/?format=json", "/pypi/simple/foo-bar/?format=json", 301, id="query-kept"),
]


@pytest.fixture(params=["", "https://pkgs.example", "https://pkgs.example/idx/"],
                ids=["no-public-url", "public-url", "public-url-with-prefix"])
def settings(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(server={"public_url": request.param})


@pytest.fixture
async def published(upload: Uploader) -> Dist:
    assert (await upload(DIST)).status == 200
    return DIST


@pytest.mark.parametrize(("path", "target", "status"), REDIRECTS)
async def test_every_redirect_honours_public_url(
        client: TestClient, settings: Settings, published: Dist, path: str, target: str, status: int) -> None:
    """B5: behind ``public_url = "https://host/prefix"`` the location keeps the prefix (absolute, under
    the public URL); without one it is a path on the request's own origin, as before."""
    response = await client.get(path, allow_redirects=False)
    assert response.status == status
    public = settings.server.public_url
    expected = f"{public}{target}" if public else target
    assert response.headers["Location"] == expected
    # What a reverse proxy in front would forward: the location without the public URL.
    forwarded = expected.removeprefix(public or "")
    assert (await client.get(URL(forwarded).path_qs)).status == 200


async def test_release_urls_of_the_json_api_lead_to_the_release(client: TestClient, published: Dist,
                                                                settings: Settings) -> None:
    """A3: ``package_url`` and ``release_url`` (``/pypi/<p>/``, ``/pypi/<p>/<v>/``) lead to the web
    interface's project page, to the release's anchor, which the page has."""
    info = (await (await client.get("/pypi/foo-bar/json")).json())["info"]
    public = settings.server.public_url or ""  # without it, paths: never from the Host header (L9)
    assert info["package_url"] == f"{public}/pypi/foo-bar/"
    assert info["release_url"] == f"{public}/pypi/foo-bar/1.0/"
    for url, anchor in ((info["package_url"], ""), (info["release_url"], "release-1")):
        response = await client.get(URL(url.removeprefix(public)).path, allow_redirects=False)
        location = response.headers["Location"]
        assert location.startswith(settings.server.public_url or "/")
        target = URL(location.removeprefix(settings.server.public_url or ""))
        assert target.fragment == anchor
        page = await client.get(target.path)
        assert page.status == 200 and page.content_type == "text/html"
        if anchor:
            assert re.search(rf'<details class="release" id="{anchor}"', await page.text())


async def test_the_duplicate_upload_message_links_to_help(client: TestClient, published: Dist,
                                                          upload: Uploader) -> None:
    """A3: "File already exists ... See /help/#file-name-reuse": that page and section exist."""
    rebuilt = Dist("Foo_Bar", "1.0", summary="rebuilt")  # same filename, other bytes
    response = await upload(rebuilt)
    assert response.status == 400
    match = re.search(r"See (\S+) for more information", await response.text())
    assert match is not None
    link = URL(match[1])
    page = await client.get(link.path)
    assert page.status == 200 and page.content_type == "text/html"
    text = await page.text()
    assert f'id="{link.fragment}"' in text
    assert "bump the version" in text and "post-release" in text
