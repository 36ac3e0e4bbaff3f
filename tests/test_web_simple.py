"""The simple index over HTTP: negotiation, redirects, caching headers (STANDARDS B, C, D)."""

from __future__ import annotations

import asyncio
from html.parser import HTMLParser
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from tests.builders import Dist
from tests.conftest import Uploader, start_client

JSON = "application/vnd.pypi.simple.v1+json"
PIP_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
UV_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


class Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []
        self.meta: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))
        elif tag == "meta":
            values = dict(attrs)
            self.meta[values.get("name") or ""] = values.get("content")


def parse(html: str) -> Anchors:
    parser = Anchors()
    parser.feed(html)
    return parser


@pytest.fixture
async def published(upload: Uploader) -> Dist:
    dist = Dist("Acme.Widget", "1.0.0", requires_python=">=3.8,<4")
    for kind in ("wheel", "sdist"):
        assert (await upload(dist, kind)).status == 200
    return dist


@pytest.mark.parametrize(("accept", "expected"), [
    (None, "text/html"),
    ("*/*", "text/html"),
    ("text/html", "text/html"),
    (PIP_ACCEPT, JSON),
    (UV_ACCEPT, JSON),
    ("application/vnd.pypi.simple.latest+json", JSON),
    ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.v1+html"),
])
async def test_negotiated_content_type_with_vary(client: TestClient, published: Dist, accept: str | None, expected: str) -> None:
    """C1, C2 (PEP 691): Accept picks the format; every response says Vary: Accept (and
    Accept-Encoding: pages are also sent gzip-coded, issue 11 B7)."""
    headers = {"Accept": accept} if accept else {}
    for path in ("/pypi/simple/", "/pypi/simple/acme-widget/"):
        response = await client.get(path, headers=headers)
        assert response.status == 200
        assert response.content_type == expected
        assert response.headers["Vary"] == "Accept, Accept-Encoding"


async def test_unacceptable_is_406(client: TestClient, published: Dist) -> None:
    """C2: nothing acceptable -> 406."""
    response = await client.get("/pypi/simple/acme-widget/", headers={"Accept": "application/json"})
    assert response.status == 406


async def test_html_project_page(client: TestClient, published: Dist) -> None:
    """B2, B4, B6, B7 (PEP 503/629/658/714) on the served page."""
    page = parse(await (await client.get("/pypi/simple/acme-widget/")).text())
    assert page.meta["pypi:repository-version"] == "1.4"
    by_text = {a["href"].split("#")[0].rsplit("/", 1)[-1]: a for a in page.anchors}  # type: ignore[union-attr]
    wheel = by_text[published.wheel_filename]
    assert wheel["href"].split("#")[1].startswith("sha256=")  # type: ignore[union-attr]
    assert wheel["data-requires-python"] == ">=3.8,<4"  # parser unescapes &gt;
    assert wheel["data-core-metadata"] == wheel["data-dist-info-metadata"]
    assert wheel["data-core-metadata"].startswith("sha256=")  # type: ignore[union-attr]
    raw = await (await client.get("/pypi/simple/acme-widget/")).text()
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in raw


async def test_links_resolve_to_files(client: TestClient, published: Dist) -> None:
    """B2: relative hrefs resolve to downloadable files with the advertised hash."""
    import hashlib

    response = await client.get("/pypi/simple/acme-widget/", headers={"Accept": JSON})
    for file in (await response.json())["files"]:
        url = response.url.join(__import__("yarl").URL(file["url"]))
        body = await (await client.get(url.path)).read()
        assert hashlib.sha256(body).hexdigest() == file["hashes"]["sha256"]
        assert len(body) == file["size"]
        metadata = await (await client.get(url.path + ".metadata")).read()
        assert hashlib.sha256(metadata).hexdigest() == file["core-metadata"]["sha256"]


async def test_json_root_lists_display_names(client: TestClient, published: Dist) -> None:
    """C3 / B1: the root lists every private project; links end in a slash."""
    data = await (await client.get("/pypi/simple/", headers={"Accept": JSON})).json()
    assert data == {"meta": {"api-version": "1.4"}, "projects": [{"name": "Acme.Widget"}]}
    html = parse(await (await client.get("/pypi/simple/")).text())
    assert [a["href"] for a in html.anchors] == ["acme-widget/"]


async def test_new_project_appears_in_root_at_once(client: TestClient, published: Dist, upload: Uploader) -> None:
    """E5: the root page is not stale after a new project is uploaded."""
    await client.get("/pypi/simple/", headers={"Accept": JSON})
    assert (await upload(Dist("second", "0.1"))).status == 200
    data = await (await client.get("/pypi/simple/", headers={"Accept": JSON})).json()
    assert [p["name"] for p in data["projects"]] == ["Acme.Widget", "second"]


@pytest.mark.parametrize("path", ["/pypi/simple/Acme.Widget/", "/pypi/simple/ACME_widget", "/pypi/simple/acme-widget"])
async def test_non_normalised_urls_redirect(client: TestClient, published: Dist, path: str) -> None:
    """B3 (PEP 503): 301 to the normalised URL with a trailing slash."""
    response = await client.get(path, allow_redirects=False)
    assert response.status == 301
    assert response.headers["Location"] == "/pypi/simple/acme-widget/"


async def test_root_without_slash_redirects(client: TestClient) -> None:
    response = await client.get("/pypi/simple", allow_redirects=False)
    assert response.status == 301
    assert response.headers["Location"] == "/pypi/simple/"


async def test_unknown_project_is_404(client: TestClient) -> None:
    assert (await client.get("/pypi/simple/nothing-here/")).status == 404


async def test_etag_and_304(client: TestClient, published: Dist) -> None:
    """D2: every page has an ETag; a matching If-None-Match gets 304, per representation."""
    first = await client.get("/pypi/simple/acme-widget/", headers={"Accept": JSON})
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"]
    again = await client.get("/pypi/simple/acme-widget/", headers={"Accept": JSON, "If-None-Match": etag})
    assert again.status == 304
    assert again.headers["ETag"] == etag
    html = await client.get("/pypi/simple/acme-widget/", headers={"If-None-Match": etag})
    assert html.status == 200, "the HTML representation has its own ETag"
    root = await client.get("/pypi/simple/", headers={"Accept": JSON})
    assert (await client.get("/pypi/simple/", headers={"Accept": JSON, "If-None-Match": root.headers["ETag"]})).status == 304


async def test_etag_changes_after_upload(client: TestClient, published: Dist, upload: Uploader) -> None:
    """E5: a page cached by a client is revalidated into the new content."""
    etag = (await client.get("/pypi/simple/acme-widget/", headers={"Accept": JSON})).headers["ETag"]
    assert (await upload(Dist("Acme.Widget", "1.1.0"))).status == 200
    response = await client.get("/pypi/simple/acme-widget/", headers={"Accept": JSON, "If-None-Match": etag})
    assert response.status == 200
    assert (await response.json())["versions"] == ["1.0.0", "1.1.0"]


async def test_head_works_on_pages(client: TestClient, published: Dist) -> None:
    """D3: HEAD works everywhere GET does."""
    response = await client.head("/pypi/simple/acme-widget/")
    assert response.status == 200
    assert await response.read() == b""


async def test_yanked_file_shown_with_reason(client: TestClient, published: Dist, settings: object) -> None:
    """B5, C4 (PEP 592): yank state from storage reaches both renderings."""
    from proxy.storage.private import PrivateStorage

    storage = PrivateStorage(settings.data_dir)  # type: ignore[attr-defined]
    await asyncio.to_thread(storage.update, "acme-widget",
                            lambda p: p.with_yank({published.wheel_filename}, "broken <build>"))
    data = await (await client.get("/pypi/simple/acme-widget/", headers={"Accept": JSON})).json()
    yanked = {f["filename"]: f["yanked"] for f in data["files"]}
    assert yanked == {published.wheel_filename: "broken <build>", published.sdist_filename: False}
    raw = await (await client.get("/pypi/simple/acme-widget/")).text()
    assert 'data-yanked="broken &lt;build&gt;"' in raw


async def test_a_rendered_page_survives_a_restart_and_follows_changes(
        client: TestClient, published: Dist, aiohttp_client: Any, settings: Settings, upload: Uploader) -> None:
    """Issue 5: pages are rendered once per index change; a restarted server (or another worker)
    reads the rendered page from disk, with the same ETag; a new upload gives a new page."""
    first = await client.get("/pypi/simple/acme-widget/")
    body, etag = await first.read(), first.headers["ETag"]
    rendered_dir = settings.data_dir / "cache" / "private-pages" / "acme-widget"
    assert sorted(p.name.split(".")[1] for p in rendered_dir.iterdir()) == ["html", "json", "json-gzip"]

    restarted = await start_client(aiohttp_client, settings)
    again = await restarted.get("/pypi/simple/acme-widget/", headers={"If-None-Match": etag})
    assert again.status == 304
    assert await (await restarted.get("/pypi/simple/acme-widget/")).read() == body

    assert (await upload(Dist("Acme.Widget", "1.1.0"), "wheel")).status == 200
    newer = await restarted.get("/pypi/simple/acme-widget/")
    assert newer.headers["ETag"] != etag and b"1.1.0" in await newer.read()
    assert len([p for p in rendered_dir.iterdir() if ".html." in p.name]) == 1, "the old version's page is gone"


async def test_an_upload_renders_its_pages_before_the_first_install(
        client: TestClient, published: Dist, settings: Settings) -> None:
    """The first install after an upload reads a page rendered at upload time (issue 5)."""
    rendered_dir = settings.data_dir / "cache" / "private-pages" / "acme-widget"
    # The HTML page is under compression.MIN_BYTES: no gzip copy of it.
    assert sorted(p.name.split(".")[1] for p in rendered_dir.iterdir()) == ["html", "json", "json-gzip"]
