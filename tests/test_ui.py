"""The web interface's view models and description rendering: pure functions, no server."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from proxy.core.indexpage import IndexFile, IndexPage
from proxy.core.models import PrivateProject, ReleaseInfo, StoredFile
from proxy.ui import readme, views, views_home, views_list, views_project, views_releases
from proxy.ui import status as uistatus
from proxy.ui.readme import Shown, render_description
from proxy.upstream.health import UpstreamHealth

SITE = views.site_for(None, "http", "pkgs:8080")
MOMENT = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def stored(filename: str, version: str, yanked: str | None = None) -> StoredFile:
    return StoredFile(filename, version, "bdist_wheel", "py3", 2048, "a" * 64, "b" * 32, "c" * 64, MOMENT,
                      "alice", requires_python=">=3.8", yanked_reason=yanked)


@pytest.mark.parametrize(("public_url", "base", "root"), [
    (None, "http://pkgs:8080", ""),
    ("https://example.org/idx/", "https://example.org/idx", "/idx"),
])
def test_site(public_url: str | None, base: str, root: str) -> None:
    site = views.site_for(public_url, "http", "pkgs:8080")
    assert (site.base_url, site.root) == (base, root)
    assert site.index_url == f"{base}/pypi/simple/" and site.upload_url == f"{base}/pypi"
    assert site.project_link("my-pkg") == f"{root}/-/projects/my-pkg/"


@pytest.mark.parametrize(("size", "text"), [
    (None, "-"), (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (5 * 1024**3, "5.0 GiB"), (2 * 1024**5, "2048.0 TiB"),
])
def test_human_bytes(size: int | None, text: str) -> None:
    assert views.human_bytes(size) == text


def test_snippets_match_the_readme_forms() -> None:
    texts = {s.text for s in views_home.snippets(SITE)}
    assert "[global]\nindex-url = http://pkgs:8080/pypi/simple/\n" in texts
    assert "export UV_DEFAULT_INDEX=http://pkgs:8080/pypi/simple/\n" in texts
    assert "poetry source add --priority=primary internal http://pkgs:8080/pypi/simple/\n" in texts
    assert any("repository = http://pkgs:8080/pypi\n" in t for t in texts)


def test_listing_markers_and_search() -> None:
    rows = views_list.listed_projects(SITE, ["My_Pkg", "acme-tool"], ["my-pkg", "demo", "acme-old"], ["acme-*"])
    assert [(r.name, r.marker) for r in rows] == [
        ("acme-old", "reserved"), ("acme-tool", "private"), ("demo", "cached"), ("My_Pkg", "private")]
    assert [r.key for r in views_list.search(rows, "MY.pkg")] == ["my-pkg"]
    assert [r.key for r in views_list.search(rows, "  ")] == [r.key for r in rows]


@pytest.mark.parametrize(("text", "page"), [(None, 1), ("", 1), ("0", 1), ("-2", 1), ("x", 1), ("3", 3)])
def test_page_number(text: str | None, page: int) -> None:
    assert views_list.page_number(text) == page


def test_paging_keeps_the_query() -> None:
    rows = views_list.listed_projects(SITE, [f"pkg{n}" for n in range(7)], [], [])
    view = views_list.projects_view(SITE, rows, "pkg", 2, [], per_page=3)
    assert [r.name for r in view.projects] == ["pkg3", "pkg4", "pkg5"]
    assert (view.page, view.pages, view.first) == (2, 3, 4)
    assert view.prev_url == "/-/projects?q=pkg" and view.next_url == "/-/projects?q=pkg&page=3"
    assert views_list.projects_view(SITE, rows, "", 9, [], per_page=3).page == 3
    assert views_list.projects_view(SITE, rows, "acme-x", 1, ["acme-*"]).query_reserved


def test_private_project_view() -> None:
    project = PrivateProject(
        "my-pkg", "My_Pkg",
        files=(stored("my_pkg-1.0-py3-none-any.whl", "1.0"), stored("my_pkg-1.10-py3-none-any.whl", "1.10"),
               stored("my_pkg-2.0-py3-none-any.whl", "2.0", yanked="bad")),
        releases=(ReleaseInfo("1.0"), ReleaseInfo("1.10", summary="Current", description="*hi*",
                                                  description_content_type="text/markdown",
                                                  project_urls=(("Docs", "https://d.example"), ("Evil", "javascript:x"))),
                  ReleaseInfo("2.0")),
    )
    view = views_project.private_project_view(SITE, project, Shown(render_description("*hi*", "text/markdown")))
    assert [r.version for r in view.releases] == ["2.0", "1.10", "1.0"]
    assert view.releases[0].yanked and view.releases[1].current
    assert view.install_line == "pip install My_Pkg==1.10 --index-url http://pkgs:8080/pypi/simple/"
    assert view.summary == "Current" and "<em>hi</em>" in view.description
    assert view.links == (("Docs", "https://d.example"),)
    row = view.releases[1].files[0]
    assert (row.size, row.uploaded, row.uploader) == ("2.0 KiB", "2024-05-01 12:00:00 UTC", "alice")
    assert row.url == "/pypi/files/my-pkg/my_pkg-1.10-py3-none-any.whl"


def test_cached_project_view_groups_files_by_version() -> None:
    files = tuple(IndexFile(name, f"https://files.example/{name}", {"sha256": "d" * 64}, size=10, yanked_reason=y)
                  for name, y in (("demo-1.0.tar.gz", None), ("demo-1.0-py3-none-any.whl", None),
                                  ("demo-2.0rc1.tar.gz", None), ("demo-3.0.tar.gz", "broken"), ("demo.exe", None)))
    view = views_project.cached_project_view(
        SITE, IndexPage("demo", files, ()), frozenset({"demo-1.0.tar.gz"}), reserved=False)
    assert [r.version for r in view.releases] == ["3.0", "2.0rc1", "1.0", views_releases.OTHER_FILES]
    assert view.version == "1.0"  # newest final that is not yanked
    assert [f.cached for f in view.releases[2].files] == [False, True]
    reserved = views_project.cached_project_view(
        SITE, IndexPage("demo", files, ()), frozenset(), reserved=True)
    assert reserved.marker == "reserved" and reserved.install_line is None


def test_status_view() -> None:
    health = UpstreamHealth()
    health.succeeded("page")
    health.failed("file", OSError("refused"))
    status = uistatus.upstream_status(health.report(), "https://pypi.org/simple/", now=health.last_failure + 90)  # type: ignore[operator]
    assert status.state == "failing" and status.fetches == (("file", 1, 1), ("page", 1, 0))
    assert status.last_failure.endswith("(1 min ago)") and status.recent_errors[0][1:] == ("file", "OSError")
    view = uistatus.status_view(SITE, storage_error=None, private_projects=2, upstream=status, page_cache_limit=1000,
                          cache={"files": 1, "file_bytes": 512, "file_limit_bytes": 1024, "page_cache_bytes": 100})
    assert [(g.label, g.percent) for g in view.gauges] == [("Cached files", 50), ("Page cache", 10)]
    assert uistatus.status_view(SITE, storage_error="x", private_projects=0, upstream=None, cache={},
                          page_cache_limit=1).gauges == ()


@pytest.mark.parametrize(("text", "content_type", "expected", "absent"), [
    ("*hi* <script>x()</script>", "text/markdown", "<em>hi</em>", "<script"),
    ("[a](javascript:alert(1))", "text/markdown; variant=CommonMark", "<a", "javascript:"),
    ("Title\n=====\n\n**strong**", "text/x-rst", "<strong>strong</strong>", "<script"),
    ("**strong**", None, "<strong>strong</strong>", "<script"),  # no type: reStructuredText, as on PyPI
    ("a <script>x()</script>", "text/plain", "a &lt;script&gt;", "<script"),
    ("bad\n\n.. raw:: html\n\n   <script>x()</script>", "text/x-rst", "&lt;script&gt;", "<script"),  # unrenderable
])
def test_descriptions_are_safe(text: str, content_type: str | None, expected: str, absent: str) -> None:
    html = render_description(text, content_type)
    assert expected in html and absent not in html


def test_empty_description() -> None:
    assert render_description("  \n", "text/markdown") == ""


@pytest.mark.parametrize(("reason", "note"), [
    (readme.TOO_LARGE, "longer than this server renders"),
    (readme.TOO_SLOW, "took longer than this server allows"),
    (readme.TOO_MUCH_MEMORY, "needed more memory than this server allows"),
    (readme.NOT_READY, "for now"),
])
def test_a_description_shown_plain_says_why(reason: str, note: str) -> None:
    """M1: a description that is not rendered is the text escaped, with a note saying why."""
    project = PrivateProject("doc", "doc", files=(stored("doc-1.0-py3-none-any.whl", "1.0"),),
                             releases=(ReleaseInfo("1.0", description="*a* <b>",
                                                   description_content_type="text/x-rst"),))
    view = views_project.private_project_view(SITE, project, readme.Shown(None, reason))
    assert view.description == '<pre class="plain-description">*a* &lt;b&gt;</pre>'
    assert note in view.description_note
    rendered = views_project.private_project_view(
        SITE, project, readme.Shown(render_description("*a* <b>", "text/x-rst")))
    assert "<em>a</em>" in rendered.description and rendered.description_note == ""
