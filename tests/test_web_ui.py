"""The web interface through the real app: every page, 404s, search, paging, markers, escaping."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from proxy.storage.auth import AuthStore
from proxy.storage.private import PrivateStorage
from proxy.ui.descriptions import Descriptions
from proxy.web.keys import DESCRIPTIONS
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, start_client, upload_form
from tests.fakeupstream import FakeUpstream
from tests.test_descriptions import rst, until

MakeSettings = Callable[..., Settings]
DEMO_WHEEL = "demo-1.0-py3-none-any.whl"
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'
PLAIN = '<pre class="plain-description">'  # a description shown as text, not rendered


async def publish(client: TestClient, dist: Dist, kind: str = "wheel", user: str = "alice") -> None:
    response = await client.post("/pypi/", data=upload_form(dist, kind), headers=basic(user, PASSWORD))
    assert response.status == 200, await response.text()


async def html(client: TestClient, path: str, status: int = 200) -> str:
    response = await client.get(path)
    assert response.status == status, await response.text()
    assert response.content_type == "text/html"
    return await response.text()


def names_with_markers(page: str) -> dict[str, str]:
    return dict(re.findall(r'<li><a href="[^"]*">([^<]+)</a> <span class="badge (\w+)">', page))


async def test_home_shows_counts_and_snippets_with_this_servers_url(client: TestClient) -> None:
    await publish(client, Dist("My_Pkg", "1.0"))
    page = await html(client, "/")
    base = str(client.make_url("")).rstrip("/")
    assert re.search(r"<b>1</b><span>private projects</span>", page)
    assert re.search(r"<b>0</b><span>cached projects</span>", page)
    assert f"[global]\nindex-url = {base}/pypi/simple/" in page
    assert f"export PIP_INDEX_URL={base}/pypi/simple/" in page
    assert f"export UV_DEFAULT_INDEX={base}/pypi/simple/" in page
    assert f"poetry source add --priority=primary internal {base}/pypi/simple/" in page
    assert "[[tool.pdm.source]]" in page and f'url = &#34;{base}/pypi/simple/&#34;' in page
    assert f"repository = {base}/pypi\n" in page
    assert "upstream is switched off" in page.replace("\n", " ")


async def test_public_url_shapes_snippets_and_links(aiohttp_client: Any, make_settings: MakeSettings,
                                                    auth: AuthStore) -> None:
    client = await start_client(aiohttp_client, make_settings(server={"public_url": "https://pkgs.example/idx/"}))
    page = await html(client, "/")
    assert "index-url = https://pkgs.example/idx/pypi/simple/" in page
    assert 'href="/idx/-/projects"' in page


async def test_projects_search_by_any_spelling(client: TestClient) -> None:
    await publish(client, Dist("my-pkg", "1.0"))
    await publish(client, Dist("other", "1.0"))
    page = await html(client, "/-/projects?q=My_Pkg")
    assert names_with_markers(page) == {"my-pkg": "private"}
    assert "1 matching" in page and 'value="My_Pkg"' in page
    page = await html(client, "/-/projects?q=nothing-like-it")
    assert names_with_markers(page) == {} and "No project matches this search" in page
    assert names_with_markers(await html(client, "/-/projects")) == {"my-pkg": "private", "other": "private"}


async def test_projects_are_paged(client: TestClient) -> None:
    for number in range(55):
        await publish(client, Dist(f"pkg{number:02d}", "1.0"))
    first = await html(client, "/-/projects")
    assert list(names_with_markers(first)) == [f"pkg{n:02d}" for n in range(50)]
    assert "Page 1 of 2" in first and 'href="/-/projects?page=2" rel="next"' in first
    second = await html(client, "/-/projects?page=2")
    assert list(names_with_markers(second)) == [f"pkg{n:02d}" for n in range(50, 55)]
    assert 'href="/-/projects" rel="prev"' in second
    assert list(names_with_markers(await html(client, "/-/projects?page=99"))) == list(names_with_markers(second))
    assert list(names_with_markers(await html(client, "/-/projects?page=x"))) == list(names_with_markers(first))
    searched = await html(client, "/-/projects?q=PKG0&page=1")
    assert len(names_with_markers(searched)) == 10 and "Page" not in searched


async def test_markers_private_cached_reserved(aiohttp_client: Any, upstream_settings: MakeSettings,
                                               fake_upstream: FakeUpstream, auth: AuthStore) -> None:
    fake_upstream.add(Dist("acme-old", "1.0"))
    client = await start_client(aiohttp_client, upstream_settings())
    for name, filename in (("demo", DEMO_WHEEL), ("acme-old", "acme_old-1.0-py3-none-any.whl")):
        assert (await client.get(f"/pypi/simple/{name}/")).status == 200
        assert (await (await client.get(f"/pypi/files/{name}/{filename}")).read())
    await client.close()

    # Restarted with acme-* reserved: the cached acme-old is no longer served; acme-tool is private.
    client = await start_client(aiohttp_client, upstream_settings(upstream={"reserved": ["acme-*"]}))
    await publish(client, Dist("acme-tool", "1.0"))
    page = await html(client, "/-/projects")
    assert names_with_markers(page) == {"acme-old": "reserved", "acme-tool": "private", "demo": "cached"}
    assert "<code>acme-*</code>" in page
    note = await html(client, "/-/projects?q=acme-new")
    assert "is reserved for private use" in note
    home = await html(client, "/")
    assert re.search(r"<b>2</b><span>cached projects</span>", home)


async def test_private_project_page(client: TestClient, settings: Settings) -> None:
    await publish(client, Dist("My_Pkg", "1.0", requires_python=">=3.8"))
    await publish(client, Dist("My_Pkg", "1.0"), kind="sdist")
    await publish(client, Dist("My_Pkg", "2.0b1", summary="Beta"))
    await publish(client, Dist("My_Pkg", "1.10", summary="The current one",
                               description="# Title\n\nSome *text*.\n"))
    base = str(client.make_url("")).rstrip("/")
    page = await html(client, "/-/projects/my-pkg/")
    assert f"pip install My_Pkg==1.10 --index-url {base}/pypi/simple/" in page  # newest final release
    assert "The current one" in page and "<em>text</em>" in page
    versions = re.findall(r'<details class="release"[^>]*>\n<summary>([^\n<]+)', page)
    assert versions == ["2.0b1", "1.10", "1.0"]  # PEP 440 order, newest first
    assert 'href="/pypi/files/my-pkg/my_pkg-1.0.tar.gz"' in page
    assert "by alice" in page and "Python &gt;=3.8" in page
    stored = (await asyncio.to_thread(PrivateStorage(settings.data_dir).load, "my-pkg"))
    assert stored is not None
    assert f"sha256 {stored.file('my_pkg-1.0.tar.gz').sha256}" in page  # type: ignore[union-attr]


async def test_project_page_redirects_to_the_normalised_name(client: TestClient) -> None:
    await publish(client, Dist("my-pkg", "1.0"))
    for path in ("/-/projects/My_Pkg/", "/-/projects/my-pkg"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 301 and response.headers["Location"] == "/-/projects/my-pkg/"


async def test_yanked_files_show_their_reason_escaped(client: TestClient, settings: Settings) -> None:
    await publish(client, Dist("pkg", "1.0"))
    await publish(client, Dist("pkg", "1.1"))
    storage = PrivateStorage(settings.data_dir)
    await asyncio.to_thread(storage.update, "pkg",
                            lambda p: p.with_yank({"pkg-1.1-py3-none-any.whl"}, f"broken {EVIL}"))
    page = await html(client, "/-/projects/pkg/")
    assert "Yanked: broken &lt;script&gt;" in page and "<script>alert" not in page
    assert "pip install pkg==1.0 " in page  # the yanked 1.1 is not the one to install


async def test_package_html_is_shown_as_text_never_run(client: TestClient) -> None:
    description = f"# Hello {EVIL}\n\n<script>alert(2)</script>\n\n[click](javascript:alert(3))\n\n<b onclick=x>bold</b>\n"
    await publish(client, Dist("evil", "1.0", summary=f"Summary {EVIL}", description=description,
                               requires_python="<4,>=3"))
    page = await html(client, "/-/projects/evil/")
    scripts = re.findall(r"(<script\b[^>]*>)(.*?)</script>", page, re.S)
    assert scripts == [('<script src="/-/static/ui.js">', "")]  # only our own, from its file (L4)
    assert "Summary &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "onerror" not in page.replace("onerror=alert(1)&gt;", "")  # only the escaped text
    assert "javascript:" not in page and "onclick" not in page
    assert "Python &lt;4,&gt;=3" in page
    search = await html(client, f"/-/projects?q={EVIL}")
    assert "<script>alert" not in search and "&lt;script&gt;" in search
    missing = await html(client, "/-/projects/%3Cscript%3Ealert(1)/", status=404)
    assert "<script>alert" not in missing


@dataclass
class Described(Dist):
    """A distribution whose description has the Description-Content-Type ``content_type``."""

    content_type: str = "text/x-rst"

    def metadata(self) -> bytes:
        return super().metadata().replace(b"Description-Content-Type: text/markdown",
                                          f"Description-Content-Type: {self.content_type}".encode())


def descriptions(client: TestClient) -> Descriptions:
    assert client.app is not None
    return client.app[DESCRIPTIONS]


async def test_plain_and_rst_descriptions(client: TestClient) -> None:
    await publish(client, Described("plain", "1.0", description="*not emphasis* <b>x</b>\n", content_type="text/plain"))
    page = await html(client, "/-/projects/plain/")
    assert '<pre class="plain-description">*not emphasis* &lt;b&gt;x&lt;/b&gt;</pre>' in page
    assert 'class="note"' not in page  # plain by its content type: nothing to explain
    await publish(client, Described("rst", "1.0", description="Title\n=====\n\nSome **strong** text.\n"))
    assert "<strong>strong</strong>" in await html(client, "/-/projects/rst/")


@pytest.mark.parametrize(("content_type", "description"), [
    ("text/x-rst", f"Hello *there* {EVIL}\n\nA `click <javascript:alert(3)>`_ link.\n"),
    ("text/markdown", f"Hello *there* {EVIL}\n\n[click](javascript:alert(3)) <b onclick=x>bold</b>\n"),
])
async def test_rendered_descriptions_are_sanitised(client: TestClient, content_type: str, description: str) -> None:
    """Rendered in the renderer process, still through readme_renderer's nh3 clean-up."""
    await publish(client, Described("evil", "1.0", description=description, content_type=content_type))
    page = await html(client, "/-/projects/evil/")
    assert "<em>there</em>" in page and PLAIN not in page
    assert "<script>alert" not in page and "onerror=alert(1)>" not in page
    assert "javascript:" not in page and "onclick" not in page


async def test_a_description_renders_once_across_views(aiohttp_client: Any, settings: Settings,
                                                     client: TestClient) -> None:
    """M1: views of a release's description after the first cost no render, concurrent first
    views share one, and a restart (or another worker) reads it from disk."""
    text = rst(64 * 1024)  # ~1 s of docutils: the repro's kind of text, smaller
    await publish(client, Described("bigdoc", "1.0", description=text))
    pages = await asyncio.gather(*(html(client, "/-/projects/bigdoc/") for _ in range(10)))
    pages += [await html(client, "/-/projects/bigdoc/") for _ in range(5)]
    assert descriptions(client).renders == 1
    assert all("<em>emphasis</em>" in page and PLAIN not in page for page in pages)
    await publish(client, Described("bigdoc", "1.1", description=text))  # the same text again
    assert "<em>emphasis</em>" in await html(client, "/-/projects/bigdoc/")
    assert descriptions(client).renders == 1
    restarted = await start_client(aiohttp_client, settings)
    assert "<em>emphasis</em>" in await html(restarted, "/-/projects/bigdoc/")
    assert descriptions(restarted).renders == 0


async def test_health_is_answered_while_a_description_renders(aiohttp_client: Any, make_settings: MakeSettings,
                                                              auth: AuthStore) -> None:
    """M1: the render runs in another process, so the server's loop (and GIL) stay free."""
    client = await start_client(aiohttp_client, make_settings(
        descriptions={"max_size": "2 MiB", "render_max_size": "2 MiB", "render_timeout": 600}))
    # an sdist: compressed, where the test builder stores a wheel's METADATA uncompressed
    await publish(client, Described("bigdoc", "1.0", description=rst(1024 * 1024)), kind="sdist")  # ~20 s of docutils
    view = asyncio.ensure_future(client.get("/-/projects/bigdoc/"))
    try:
        await until(lambda: descriptions(client).rendering == 1)
        health = await client.get("/-/health")
        assert health.status == 200
        assert descriptions(client).rendering == 1  # answered during the render, not after it
    finally:
        await descriptions(client).close()  # kills the renderer: the view shows the text plain
        response = await view
    page = await response.text()
    assert response.status == 200 and "Shown as plain text for now" in page


async def test_a_large_description_is_shown_plain_without_a_render(aiohttp_client: Any,
                                                                   make_settings: MakeSettings,
                                                                   auth: AuthStore) -> None:
    """M1's repro: 2 MiB of reStructuredText (accepted here: as if uploaded before the cap) is
    above render_max_size, so it is shown escaped and plain, and nothing renders it."""
    client = await start_client(aiohttp_client, make_settings(descriptions={"max_size": "4 MiB"}))
    text = rst(2 * 1024 * 1024) + "<b>not bold</b>\n"
    await publish(client, Described("bigdoc", "1.0", description=text), kind="sdist")
    for _ in range(3):
        page = await html(client, "/-/projects/bigdoc/")
        assert "longer than this server renders" in page
        assert '<pre class="plain-description">Title\n=====\n\nSome *emphasis*' in page
        assert "&lt;b&gt;not bold&lt;/b&gt;" in page and "<em>" not in page
    assert descriptions(client).renders == 0


async def test_a_render_over_the_time_budget_is_shown_plain(aiohttp_client: Any, make_settings: MakeSettings,
                                                            auth: AuthStore) -> None:
    client = await start_client(aiohttp_client, make_settings(descriptions={"render_timeout": 1.0}))
    await publish(client, Described("slowdoc", "1.0", description=rst(384 * 1024)), kind="sdist")  # ~7 s of docutils
    await publish(client, Described("quickdoc", "1.0", description=rst(1024)))
    for _ in range(2):
        page = await html(client, "/-/projects/slowdoc/")
        assert "took longer than this server allows" in page
        assert '<pre class="plain-description">Title\n=====\n\nSome *emphasis*' in page
    assert descriptions(client).renders == 1  # the outcome is kept: one budget spent, not one per view
    assert "<em>emphasis</em>" in await html(client, "/-/projects/quickdoc/")  # the same budget suffices


async def test_unknown_project_is_a_styled_404(client: TestClient) -> None:
    page = await html(client, "/-/projects/nothing/", status=404)
    assert "No project <q>nothing</q>" in page and '<link rel="stylesheet" href="/-/static/style.css">' in page
    assert "No private project has this name." in page


async def test_cached_project_page(aiohttp_client: Any, upstream_settings: MakeSettings,
                                   fake_upstream: FakeUpstream, auth: AuthStore) -> None:
    fake_upstream.add(Dist("demo", "0.9"), yanked="old")
    client = await start_client(aiohttp_client, upstream_settings())
    # Not cached yet: a 404 with a note, and upstream is not asked just to show the page.
    page = await html(client, "/-/projects/demo/", status=404)
    assert "not cached" in page and fake_upstream.requests["/simple/demo/"] == 0

    assert (await client.get("/pypi/simple/demo/")).status == 200
    await (await client.get(f"/pypi/files/demo/{DEMO_WHEEL}")).read()
    asked = sum(fake_upstream.requests.values())
    page = await html(client, "/-/projects/demo/")
    assert sum(fake_upstream.requests.values()) == asked
    base = str(client.make_url("")).rstrip("/")
    assert f"pip install demo==1.0 --index-url {base}/pypi/simple/" in page
    assert re.findall(r'<details class="release"[^>]*>\n<summary>([^\n<]+)', page) == ["1.0", "0.9"]
    wheel = fake_upstream.file(DEMO_WHEEL)
    assert f"sha256 {wheel.sha256}" in page
    assert re.search(rf'{re.escape(DEMO_WHEEL)}</a>\n <span class="badge cached">cached</span>', page)
    assert "demo-1.0.tar.gz</a>\n<div" in page  # listed, not cached
    assert "Yanked: old" in page
    assert "badge cached\">cached</span></h1>" in page


async def test_status_page(aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
                           auth: AuthStore) -> None:
    client = await start_client(aiohttp_client, upstream_settings(cache={"files_max_size": "1 MiB"}))
    page = await html(client, "/-/status")
    assert '<span class="badge unknown">unknown</span>' in page and "<b>writable</b>" in page
    await client.get("/pypi/simple/demo/")
    await (await client.get(f"/pypi/files/demo/{DEMO_WHEEL}")).read()
    fake_upstream.bad.page_status = 503
    assert (await client.get("/pypi/simple/dep/")).status == 502
    page = await html(client, "/-/status")
    assert '<span class="badge failing">failing</span>' in page
    assert "unavailable" in page.split("Recent errors")[1]  # the class; the log has the 503 (L4)
    assert 1024 <= len(fake_upstream.file(DEMO_WHEEL).content) < 1100
    assert "<span>Cached files</span><span>1.0 KiB of 1.0 MiB</span>" in page
    assert "Page cache" in page and "<b>1</b><span>cached files</span>" in page


async def test_status_without_upstream(client: TestClient) -> None:
    page = await html(client, "/-/status")
    assert "Switched off" in page and "Caches" not in page
