"""Rendering one page model as PEP 503 HTML and PEP 691 JSON, and PyPI's JSON API (B, C, F)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html.parser import HTMLParser

import pytest

from proxy import render
from proxy.models import IndexFile, IndexPage, PrivateProject, ReleaseInfo, StoredFile

WHEN = datetime(2026, 11, 24, 10, 20, 30, 123456, tzinfo=timezone.utc)


class Parsed(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.meta: dict[str, str | None] = {}
        self._open: dict[str, str | None] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open = dict(attrs)
        elif tag == "meta":
            self.meta[dict(attrs).get("name") or ""] = dict(attrs).get("content")

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.anchors.append((self._open, data))
            self._open = None


def page(*files: IndexFile) -> IndexPage:
    return IndexPage(name="demo", files=files, versions=("1.0", "1.1"))


FULL = IndexFile("demo-1.0-py3-none-any.whl", "../../files/demo/demo-1.0-py3-none-any.whl",
                 {"sha256": "ab" * 32}, ">=3.8,<4", None, "cd" * 32, 1234, WHEN)
YANKED = IndexFile("demo-1.1.tar.gz", "../../files/demo/demo-1.1.tar.gz", {"sha256": "ef" * 32},
                   yanked_reason="broken", size=10)
YANKED_NO_REASON = IndexFile("demo-1.1-py3-none-any.whl", "u", {}, yanked_reason="", size=1)


def test_b2_b4_b7_html_anchor() -> None:
    html = render.project_html(page(FULL)).decode()
    [(attrs, text)] = Parsed(html).anchors
    assert text == FULL.filename
    assert attrs["href"] == f"{FULL.url}#sha256={'ab' * 32}"
    assert attrs["data-requires-python"] == ">=3.8,<4"
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in html  # B4: escaped in the source
    assert attrs["data-core-metadata"] == f"sha256={'cd' * 32}"  # B7 (PEP 714 name)
    assert attrs["data-dist-info-metadata"] == f"sha256={'cd' * 32}"  # B7 (PEP 658 name)
    assert "data-yanked" not in attrs


def test_b5_yanked_with_and_without_reason() -> None:
    anchors = dict((text, attrs) for attrs, text in Parsed(render.project_html(page(YANKED, YANKED_NO_REASON)).decode()).anchors)
    assert anchors[YANKED.filename]["data-yanked"] == "broken"
    assert "data-yanked" in anchors[YANKED_NO_REASON.filename]
    assert anchors[YANKED_NO_REASON.filename]["data-yanked"] in ("", None)
    assert "data-core-metadata" not in anchors[YANKED.filename]


def test_b6_repository_version_meta() -> None:
    assert Parsed(render.project_html(page(FULL)).decode()).meta["pypi:repository-version"] == render.API_VERSION
    assert Parsed(render.root_html(["Demo"]).decode()).meta["pypi:repository-version"] == render.API_VERSION


def test_hostile_names_are_escaped() -> None:
    hostile = IndexFile('x"><script>alert(1)</script>.whl', "u<", {"sha256": "00"}, '"><b>')
    html = render.project_html(IndexPage("<script>", (hostile,), ())).decode()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    [(attrs, text)] = Parsed(html).anchors
    assert text == hostile.filename
    assert attrs["data-requires-python"] == '"><b>'


def test_b1_root_html_links_end_in_slash() -> None:
    parsed = Parsed(render.root_html(["Foo.Bar", "baz"]).decode())
    assert [(a["href"], t) for a, t in parsed.anchors] == [("foo-bar/", "Foo.Bar"), ("baz/", "baz")]


def test_c3_root_json() -> None:
    assert json.loads(render.root_json(["Frob", "b"])) == {
        "meta": {"api-version": render.API_VERSION}, "projects": [{"name": "Frob"}, {"name": "b"}]}


def test_c4_c5_project_json() -> None:
    data = json.loads(render.project_json(page(FULL, YANKED, YANKED_NO_REASON)))
    assert data["meta"] == {"api-version": "1.1"}
    assert data["name"] == "demo"
    assert data["versions"] == ["1.0", "1.1"]  # C5 (PEP 700)
    full, yanked, bare = data["files"]
    assert full == {
        "filename": FULL.filename, "url": FULL.url, "hashes": {"sha256": "ab" * 32},
        "requires-python": ">=3.8,<4", "core-metadata": {"sha256": "cd" * 32},
        "dist-info-metadata": {"sha256": "cd" * 32}, "yanked": False, "size": 1234,
        "upload-time": "2026-11-24T10:20:30.123456Z",
    }
    assert yanked["yanked"] == "broken"
    assert yanked["core-metadata"] is False and yanked["dist-info-metadata"] is False
    assert "upload-time" not in yanked
    assert bare["yanked"] is True  # C4: yanked without a reason is true


def stored(filename: str, version: str, yanked: str | None = None) -> StoredFile:
    return StoredFile(filename, version, "bdist_wheel", "py3", 10, "aa" * 32, "bb" * 16, "cc" * 32,
                      WHEN, "alice", yanked_reason=yanked)


def project(*versions: tuple[str, str | None]) -> PrivateProject:
    files = tuple(stored(f"demo-{v}-py3-none-any.whl", v, y) for v, y in versions)
    releases = tuple(ReleaseInfo(v, summary=f"summary {v}", requires_dist=("a>=1",)) for v, _ in versions)
    return PrivateProject("demo", "Demo", files, releases, serial=7)


@pytest.mark.parametrize(("versions", "expected"), [
    ([("1.0", None), ("1.10", None), ("1.9", None)], "1.10"),
    ([("1.0", None), ("2.0rc1", None)], "1.0"),
    ([("1.0", None), ("1.1", "bad")], "1.0"),
    ([("2.0rc1", None)], "2.0rc1"),
    ([("1.0", "bad")], "1.0"),
])
def test_f2_current_version(versions: list[tuple[str, str | None]], expected: str) -> None:
    assert render.current_version(project(*versions)) == expected


def test_f1_json_api_shape() -> None:
    data = render.json_api(project(("1.0", None), ("1.1", "bad")), "https://h/pypi")
    assert data["info"]["name"] == "Demo"
    assert data["info"]["version"] == "1.0"
    assert data["info"]["summary"] == "summary 1.0"
    assert data["info"]["requires_dist"] == ["a>=1"]
    assert data["info"]["yanked"] is False
    assert data["last_serial"] == 7
    assert data["vulnerabilities"] == []  # F3
    assert set(data["releases"]) == {"1.0", "1.1"}
    [file] = data["urls"]
    assert file["url"] == "https://h/pypi/files/demo/demo-1.0-py3-none-any.whl"
    assert file["digests"] == {"md5": "bb" * 16, "sha256": "aa" * 32, "blake2b_256": "cc" * 32}
    assert file["upload_time_iso_8601"] == "2026-11-24T10:20:30.123456Z"
    assert file["upload_time"] == "2026-11-24T10:20:30"
    assert data["releases"]["1.1"][0]["yanked"] is True
    assert data["releases"]["1.1"][0]["yanked_reason"] == "bad"


def test_f1_version_document() -> None:
    data = render.json_api(project(("1.0", None), ("1.1", "bad")), "https://h/pypi", "1.1")
    assert "releases" not in data
    assert data["info"]["version"] == "1.1"
    assert data["info"]["yanked"] is True and data["info"]["yanked_reason"] == "bad"
