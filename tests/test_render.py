"""One page model rendered as PEP 503 HTML and PEP 691 JSON, and PyPI's JSON API (STANDARDS B, C, F)."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any

import pytest

from proxy.core import render
from proxy.core.indexpage import IndexFile, IndexPage
from proxy.core.models import PrivateProject, ReleaseInfo, StoredFile

WHEN = datetime(2026, 11, 24, 10, 20, 30, 123456, tzinfo=timezone.utc)
SHA = "ab" * 32
META_SHA = "cd" * 32


class Page(HTMLParser):
    """Anchors (attributes and text), meta tags and the title of an HTML page."""

    def __init__(self, html: bytes) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.meta: dict[str, str | None] = {}
        self.metas: list[tuple[str, str | None]] = []  # every meta tag, repeated ones too
        self.title = ""
        self._anchor: dict[str, str | None] | None = None
        self._text: list[str] = []
        self._in_title = False
        self.feed(html.decode("utf-8"))
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._anchor, self._text = dict(attrs), []
        elif tag == "meta":
            self.meta[dict(attrs).get("name") or ""] = dict(attrs).get("content")
            self.metas.append((dict(attrs).get("name") or "", dict(attrs).get("content")))
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._anchor is not None:
            self.anchors.append((self._anchor, "".join(self._text)))
            self._anchor = None
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._anchor is not None:
            self._text.append(data)
        if self._in_title:
            self.title += data

    def by_text(self) -> dict[str, dict[str, str | None]]:
        return {text: attrs for attrs, text in self.anchors}


def index_page(*files: IndexFile, name: str = "demo") -> IndexPage:
    return IndexPage(name=name, files=files, versions=("1.0", "1.1"))


FULL = IndexFile(
    filename="demo-1.0-py3-none-any.whl",
    url="../../files/demo/demo-1.0-py3-none-any.whl",
    hashes={"sha256": SHA},
    requires_python=">=3.8,<4",
    core_metadata={"sha256": META_SHA},
    size=1234,
    upload_time=WHEN,
)
YANKED = IndexFile("demo-1.1.tar.gz", "../../files/demo/demo-1.1.tar.gz", {"sha256": "ef" * 32},
                   yanked_reason="broken build", size=10)
YANKED_NO_REASON = IndexFile("demo-1.1-py3-none-any.whl", "../../files/demo/demo-1.1-py3-none-any.whl",
                             {"sha256": "01" * 32}, yanked_reason="", size=1)
NO_HASH = IndexFile("demo-0.9.zip", "https://files.example/demo-0.9.zip")


# --- HTML (PEP 503 and extensions) ---------------------------------------------------------------


def test_b2_one_anchor_per_file_text_is_filename_href_has_sha256() -> None:
    """B2 (PEP 503): text = filename, href = file URL with #sha256=<hex>."""
    parsed = Page(render.project_html(index_page(FULL, YANKED, YANKED_NO_REASON)))
    assert [text for _, text in parsed.anchors] == [FULL.filename, YANKED.filename, YANKED_NO_REASON.filename]
    assert parsed.by_text()[FULL.filename]["href"] == f"{FULL.url}#sha256={SHA}"
    assert parsed.by_text()[YANKED.filename]["href"] == f"{YANKED.url}#sha256={'ef' * 32}"


def test_b2_file_without_hash_has_no_fragment() -> None:
    """B2: hashes may be empty (an upstream without them); then no '#sha256=' fragment at all."""
    [(attrs, _)] = Page(render.project_html(index_page(NO_HASH))).anchors
    assert attrs["href"] == NO_HASH.url


def test_b4_requires_python_is_html_escaped() -> None:
    """B4 (PEP 503): data-requires-python '>=3.8,<4' is written '&gt;=3.8,&lt;4'."""
    html = render.project_html(index_page(FULL))
    assert b'data-requires-python="&gt;=3.8,&lt;4"' in html
    assert Page(html).by_text()[FULL.filename]["data-requires-python"] == ">=3.8,<4"


def test_b4_no_requires_python_no_attribute() -> None:
    assert "data-requires-python" not in Page(render.project_html(index_page(YANKED))).by_text()[YANKED.filename]


def test_b5_data_yanked_with_reason_and_with_empty_reason() -> None:
    """B5 (PEP 592): data-yanked on yanked files only, its value the reason, possibly empty."""
    anchors = Page(render.project_html(index_page(FULL, YANKED, YANKED_NO_REASON))).by_text()
    assert anchors[YANKED.filename]["data-yanked"] == "broken build"
    assert "data-yanked" in anchors[YANKED_NO_REASON.filename]
    assert anchors[YANKED_NO_REASON.filename]["data-yanked"] in ("", None)
    assert "data-yanked" not in anchors[FULL.filename]


def test_b5_yank_reason_is_escaped() -> None:
    hostile = IndexFile("demo-2.0.tar.gz", "u", yanked_reason='"><script>x</script>')
    html = render.project_html(index_page(hostile))
    assert b"<script>" not in html
    assert Page(html).by_text()[hostile.filename]["data-yanked"] == '"><script>x</script>'


def test_b6_repository_version_meta() -> None:
    """B6 (PEP 629), D1: <meta name="pypi:repository-version"> carries the highest API version this
    server implements: PEP 700 (1.1), 708 (1.2), 740 (1.3), 792 (1.4)."""
    assert render.API_VERSION == "1.4"
    assert Page(render.project_html(index_page(FULL))).meta["pypi:repository-version"] == "1.4"
    assert Page(render.root_html(["Demo"])).meta["pypi:repository-version"] == "1.4"


def test_h4_a_page_with_a_file_of_unknown_size_claims_only_1_0() -> None:
    """H4 (PEP 700): 1.1 and later make ``size`` mandatory; an HTML-only upstream gives none."""
    page = index_page(FULL, NO_HASH)
    assert Page(render.project_html(page)).meta["pypi:repository-version"] == "1.0"
    assert json.loads(render.project_json(page))["meta"]["api-version"] == "1.0"
    assert render.api_version(index_page(FULL, YANKED)) == "1.4"


PASSED_ON = IndexPage(
    name="demo", versions=("1.0",),
    files=(dataclasses.replace(FULL, provenance="../../files/demo/demo-1.0-py3-none-any.whl.provenance"),),
    tracks=("https://other.example/simple/demo/",),
    alternate_locations=("https://alt.example/simple/demo/", "https://alt2.example/simple/demo/"),
    status="quarantined", status_reason='malware <"reported">', last_serial=77,
)


def test_b8_b9_b10_html_carries_pep_708_740_792() -> None:
    """B8 (PEP 708), B9 (PEP 740), B10 (PEP 792) in the HTML page, escaped."""
    html = render.project_html(PASSED_ON)
    assert b'<"reported">' not in html
    parsed = Page(html)
    assert parsed.meta["pypi:tracks"] == "https://other.example/simple/demo/"
    assert [v for k, v in parsed.metas if k == "pypi:alternate-locations"] == list(PASSED_ON.alternate_locations)
    assert parsed.meta["pypi:project-status"] == "quarantined"
    assert parsed.meta["pypi:project-status-reason"] == 'malware <"reported">'
    assert parsed.by_text()[FULL.filename]["data-provenance"] == "../../files/demo/demo-1.0-py3-none-any.whl.provenance"


def test_c6_json_carries_pep_708_740_792_and_last_serial() -> None:
    """C6 (PEP 708, 740, 792) and PyPI's ``_last-serial`` in the JSON page."""
    data = json.loads(render.project_json(PASSED_ON))
    assert data["meta"] == {"api-version": "1.4", "_last-serial": 77}
    assert data["tracks"] == ["https://other.example/simple/demo/"]
    assert data["alternate-locations"] == list(PASSED_ON.alternate_locations)
    assert data["project-status"] == {"status": "quarantined", "reason": 'malware <"reported">'}
    assert data["files"][0]["provenance"] == "../../files/demo/demo-1.0-py3-none-any.whl.provenance"


def test_a_page_without_those_keys_renders_none_of_them() -> None:
    data = json.loads(render.project_json(index_page(FULL)))
    assert not {"tracks", "alternate-locations", "project-status"} & set(data)
    assert "provenance" not in data["files"][0]
    assert b"pypi:tracks" not in render.project_html(index_page(FULL))


def test_b7_proxied_pages_offer_core_metadata_for_every_wheel() -> None:
    """B7 (PEP 658): as PyPI does, every wheel offers its core metadata, extracted by this server
    when upstream has none (``true``: no hash is known before extraction); sdists are left alone."""
    upstream = IndexPage("demo", (
        IndexFile("demo-1.0-py3-none-any.whl", "https://files.example/a.whl?tok=1", {"sha256": SHA}),
        IndexFile("demo-1.1-py3-none-any.whl", "https://files.example/b.whl", {"sha256": SHA},
                  core_metadata={"sha256": META_SHA}),
        IndexFile("demo-1.0.tar.gz", "https://files.example/c.tar.gz", {"sha256": SHA}),
    ), ("1.0", "1.1"))
    proxied = render.proxied_index_page(upstream)
    assert [f.core_metadata for f in proxied.files] == [{}, {"sha256": META_SHA}, None]
    assert [f.url for f in proxied.files] == [f"../../files/demo/{f.filename}" for f in upstream.files]
    anchors = Page(render.project_html(proxied)).by_text()
    assert anchors["demo-1.0-py3-none-any.whl"]["data-core-metadata"] == "true"
    assert json.loads(render.project_json(proxied))["files"][0]["core-metadata"] is True


def test_b9_proxied_provenance_points_at_this_server() -> None:
    """B9 (PEP 740): the provenance object is fetched through this server, like the metadata file."""
    upstream = IndexPage("demo", (dataclasses.replace(
        FULL, url="https://files.example/x.whl?sig=1", provenance="https://index.example/integrity/x/provenance"),), ("1.0",))
    (file,) = render.proxied_index_page(upstream).files
    assert file.provenance == "../../files/demo/demo-1.0-py3-none-any.whl.provenance"


def test_b7_core_metadata_under_both_names() -> None:
    """B7 (PEP 658/714): data-core-metadata and data-dist-info-metadata, both sha256=<hex>."""
    anchors = Page(render.project_html(index_page(FULL, YANKED))).by_text()
    assert anchors[FULL.filename]["data-core-metadata"] == f"sha256={META_SHA}"
    assert anchors[FULL.filename]["data-dist-info-metadata"] == f"sha256={META_SHA}"
    assert "data-core-metadata" not in anchors[YANKED.filename]
    assert "data-dist-info-metadata" not in anchors[YANKED.filename]


def test_hostile_filename_and_name_are_escaped() -> None:
    """Autoescaping: a filename or project name cannot inject markup or break out of attributes."""
    hostile = IndexFile('x"><script>alert(1)</script>.whl', 'u"onclick="x', {"sha256": "00"}, '"><b>')
    html = render.project_html(IndexPage("<script>evil</script>", (hostile,), ()))
    assert b"<script>" not in html
    assert b"&lt;script&gt;" in html
    parsed = Page(html)
    [(attrs, text)] = parsed.anchors
    assert text == hostile.filename
    assert attrs["href"] == 'u"onclick="x#sha256=00'
    assert "onclick" not in attrs
    assert attrs["data-requires-python"] == '"><b>'
    assert "<script>evil</script>" in parsed.title


def test_b1_root_html_one_anchor_per_project_with_slash() -> None:
    """B1: one <a href="{normalised}/">{name}</a> per project."""
    parsed = Page(render.root_html(["Foo.Bar", "baz", "Zope_Interface"]))
    assert [(a["href"], t) for a, t in parsed.anchors] == [
        ("foo-bar/", "Foo.Bar"), ("baz/", "baz"), ("zope-interface/", "Zope_Interface"),
    ]


def test_b1_root_html_escapes_names() -> None:
    parsed = Page(render.root_html(["a<b>"]))
    [(attrs, text)] = parsed.anchors
    assert text == "a<b>"
    assert attrs["href"] == "a<b>/"


def test_root_pages_when_empty() -> None:
    assert Page(render.root_html([])).anchors == []
    assert json.loads(render.root_json([])) == {"meta": {"api-version": "1.4"}, "projects": []}


# --- JSON (PEP 691, PEP 700) ---------------------------------------------------------------------


def test_c3_root_json() -> None:
    """C3: {"meta": {"api-version"}, "projects": [{"name": ...}]}."""
    assert json.loads(render.root_json(["Frob", "b"])) == {
        "meta": {"api-version": "1.4"}, "projects": [{"name": "Frob"}, {"name": "b"}],
    }


def project_json(*files: IndexFile) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(render.project_json(index_page(*files)))
    return data


def test_c4_c5_project_json_full_file() -> None:
    """C4/C5: every key of a file with metadata, size and upload-time."""
    data = project_json(FULL)
    assert data["meta"] == {"api-version": "1.4"}
    assert data["name"] == "demo"
    assert data["versions"] == ["1.0", "1.1"]  # C5 (PEP 700)
    assert data["files"] == [{
        "filename": FULL.filename,
        "url": FULL.url,
        "hashes": {"sha256": SHA},
        "requires-python": ">=3.8,<4",
        "core-metadata": {"sha256": META_SHA},
        "dist-info-metadata": {"sha256": META_SHA},
        "yanked": False,
        "size": 1234,
        "upload-time": "2026-11-24T10:20:30.123456Z",
    }]


def test_c4_core_metadata_false_when_absent() -> None:
    """C4 (PEP 691/714): core-metadata and dist-info-metadata are false without a .metadata file."""
    [file] = project_json(YANKED)["files"]
    assert file["core-metadata"] is False
    assert file["dist-info-metadata"] is False


@pytest.mark.parametrize(("file", "expected"), [
    (FULL, False),
    (YANKED, "broken build"),
    (YANKED_NO_REASON, True),
])
def test_c4_yanked_false_true_or_reason(file: IndexFile, expected: object) -> None:
    """C4 (PEP 592 via PEP 691): yanked is false, true, or the reason string."""
    [data] = project_json(file)["files"]
    assert data["yanked"] == expected
    assert type(data["yanked"]) is type(expected)


def test_c4_hashes_may_be_empty() -> None:
    [file] = project_json(NO_HASH)["files"]
    assert file["hashes"] == {}
    assert "size" not in file and "upload-time" not in file


def test_c5_size_and_upload_time_format() -> None:
    """C5 (PEP 700): size is int bytes; upload-time is ISO 8601 UTC ending in Z."""
    other_zone = datetime(2026, 1, 2, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    file = IndexFile("demo-1.0.tar.gz", "u", {"sha256": SHA}, size=0, upload_time=other_zone)
    [data] = project_json(file)["files"]
    assert data["size"] == 0 and isinstance(data["size"], int)
    assert data["upload-time"] == "2026-01-02T12:00:00.000000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", data["upload-time"])


def test_html_and_json_from_one_model_list_the_same_files() -> None:
    """One model, two renderings: the same files in the same order."""
    page = index_page(FULL, YANKED, YANKED_NO_REASON)
    html_files = [text for _, text in Page(render.project_html(page)).anchors]
    json_files = [f["filename"] for f in json.loads(render.project_json(page))["files"]]
    assert html_files == json_files == [f.filename for f in page.files]


# --- From a private project --------------------------------------------------------------------------


def stored(filename: str, version: str, yanked: str | None = None, **extra: Any) -> StoredFile:
    return StoredFile(filename, version, "bdist_wheel", "py3", 10, "aa" * 32, "bb" * 16, "cc" * 32,
                      WHEN, "alice", yanked_reason=yanked, **extra)


def project(*versions: tuple[str, str | None]) -> PrivateProject:
    files = tuple(stored(f"demo-{v}-py3-none-any.whl", v, y) for v, y in versions)
    releases = tuple(
        ReleaseInfo(v, summary=f"summary {v}", requires_dist=("a>=1",), requires_python=">=3.9",
                    project_urls=(("Homepage", "https://example.invalid/"),))
        for v, _ in versions
    )
    return PrivateProject("demo", "Demo", files, releases, serial=7)


def test_private_index_page_sorts_by_pep440_and_links_relative_to_the_page() -> None:
    """A3/B2: files ordered by PEP 440 version; URLs relative to /pypi/simple/<name>/."""
    demo = project(("1.10", None), ("1.9", None), ("1.0", None))
    page = render.private_index_page(demo)
    assert [f.filename for f in page.files] == [
        "demo-1.0-py3-none-any.whl", "demo-1.9-py3-none-any.whl", "demo-1.10-py3-none-any.whl",
    ]
    assert page.versions == ("1.0", "1.9", "1.10")
    assert page.files[0].url == "../../files/demo/demo-1.0-py3-none-any.whl"
    assert page.files[0].hashes == {"sha256": "aa" * 32}
    assert page.files[0].upload_time == WHEN


def test_private_index_page_carries_metadata_and_yank() -> None:
    demo = PrivateProject("demo", "Demo", (
        stored("demo-1.0-py3-none-any.whl", "1.0", requires_python=">=3.9", metadata_sha256=META_SHA),
        stored("demo-1.0.tar.gz", "1.0", yanked="oops"),
    ))
    files = {f.filename: f for f in render.private_index_page(demo).files}
    assert files["demo-1.0-py3-none-any.whl"].core_metadata == {"sha256": META_SHA}
    assert files["demo-1.0-py3-none-any.whl"].requires_python == ">=3.9"
    assert files["demo-1.0.tar.gz"].yanked_reason == "oops"


def test_file_path_quotes() -> None:
    assert render.file_path("demo", "demo-1.0+local-py3-none-any.whl") == "files/demo/demo-1.0%2Blocal-py3-none-any.whl"
