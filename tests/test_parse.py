"""Upstream pages, JSON and HTML, parsed into the one page model (STANDARDS C4, C5, B2-B7, D1, G1, A4)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from proxy.core.errors import InvalidUpstreamResponse
from proxy.core.indexpage import IndexPage
from proxy.core.parse import parse_project_list, parse_project_page, version_from_filename

PAGE_URL = "https://index.example/simple/demo/"
JSON = "application/vnd.pypi.simple.v1+json"
HTML = "text/html; charset=utf-8"
SHA = "ab" * 32
META_SHA = "cd" * 32


def json_page(*files: dict[str, Any], versions: list[str] | None = None, api: str = "1.1") -> bytes:
    document: dict[str, Any] = {"meta": {"api-version": api}, "name": "demo", "files": list(files)}
    if versions is not None:
        document["versions"] = versions
    return json.dumps(document).encode()


def json_file(filename: str = "demo-1.0-py3-none-any.whl", **keys: Any) -> dict[str, Any]:
    return {"filename": filename, "url": f"https://files.example/{filename}", "hashes": {"sha256": SHA}, **keys}


def html_page(*anchors: str, api: str = "1.0") -> bytes:
    head = f'<meta name="pypi:repository-version" content="{api}">'
    return f"<!DOCTYPE html><html><head>{head}</head><body>{''.join(anchors)}</body></html>".encode()


def parse_json(*files: dict[str, Any], **kwargs: Any) -> IndexPage:
    return parse_project_page(json_page(*files, **kwargs), JSON, PAGE_URL, "Demo")


def parse_html(*anchors: str) -> IndexPage:
    return parse_project_page(html_page(*anchors), HTML, PAGE_URL, "Demo")


# JSON (PEP 691, PEP 700) ----------------------------------------------------------------------------


def test_json_page_keeps_every_field_the_model_carries() -> None:
    """C4/C5: hashes, requires-python, yanked, size, upload-time and core-metadata survive parsing."""
    page = parse_json(json_file(
        **{"requires-python": ">=3.8", "yanked": "broken", "size": 1234,
           "upload-time": "2026-11-24T10:20:30.123456Z", "core-metadata": {"sha256": META_SHA}},
    ), versions=["1.0"])
    (file,) = page.files
    assert page.name == "demo"
    assert file.url == "https://files.example/demo-1.0-py3-none-any.whl"
    assert file.hashes == {"sha256": SHA}
    assert file.requires_python == ">=3.8"
    assert file.yanked_reason == "broken"
    assert file.size == 1234
    assert file.upload_time == datetime(2026, 11, 24, 10, 20, 30, 123456, tzinfo=timezone.utc)
    assert file.core_metadata == {"sha256": META_SHA}
    assert page.versions == ("1.0",)


@pytest.mark.parametrize(("yanked", "expected"), [(False, None), (True, ""), ("", None), ("why", "why")])
def test_json_yanked_values(yanked: object, expected: str | None) -> None:
    """C4 / PEP 592: false, true, or the reason string (an empty string is falsy: not yanked)."""
    assert parse_json(json_file(yanked=yanked)).files[0].yanked_reason == expected


@pytest.mark.parametrize(("keys", "expected"), [
    ({"core-metadata": {"sha256": META_SHA}}, {"sha256": META_SHA}),
    ({"core-metadata": True}, {}),
    ({"core-metadata": False}, None),
    ({}, None),
    ({"dist-info-metadata": {"sha256": META_SHA}}, {"sha256": META_SHA}),  # PEP 714: the old key only
    ({"core-metadata": False, "dist-info-metadata": True}, None),  # the new key wins
])
def test_json_core_metadata(keys: dict[str, Any], expected: dict[str, str] | None) -> None:
    """C4 / PEP 658 / PEP 714: a hash dict, true (offered without a hash) or absent."""
    assert parse_json(json_file(**keys)).files[0].core_metadata == expected


def test_json_relative_url_is_resolved_against_the_page() -> None:
    """C4: "url" may be relative to the page; the model holds absolute URLs."""
    entry = json_file(url="../../packages/demo-1.0-py3-none-any.whl")
    assert parse_json(entry).files[0].url == "https://index.example/packages/demo-1.0-py3-none-any.whl"


def test_json_hash_names_and_values_are_lowercased() -> None:
    entry = json_file(hashes={"SHA256": SHA.upper(), "md5": "00" * 16})
    assert parse_json(entry).files[0].hashes == {"sha256": SHA, "md5": "00" * 16}


@pytest.mark.parametrize("size", [-1, "12", True, 1.5])
def test_json_nonsense_size_is_dropped(size: object) -> None:
    assert parse_json(json_file(size=size)).files[0].size is None


def test_json_bad_upload_time_is_dropped_not_fatal() -> None:
    assert parse_json(json_file(**{"upload-time": "yesterday"})).files[0].upload_time is None


def test_json_without_versions_derives_them_from_filenames() -> None:
    """C5 makes "versions" required at 1.1; a 1.0 upstream omits it, so filenames tell."""
    page = parse_json(
        json_file("demo-1.10.tar.gz"), json_file("demo-1.9-py3-none-any.whl"),
        json_file("demo-2.0-1-py3-none-any.whl"), api="1.0",
    )
    assert page.versions == ("1.9", "1.10", "2.0")


def test_json_versions_list_is_taken_as_given_and_pep440_ordered() -> None:
    """C5: versions may name releases without files."""
    assert parse_json(json_file(), versions=["1.10", "1.0", "1.9"]).versions == ("1.0", "1.9", "1.10")


@pytest.mark.parametrize("api", ["1.0", "1.1", "1.4", "1.99"])
def test_json_any_1x_api_version_is_understood(api: str) -> None:
    """D1: an unknown minor version is fine."""
    assert parse_json(json_file(), api=api).files


@pytest.mark.parametrize("api", ["2.0", "0.9"])
def test_json_unknown_major_api_version_is_refused(api: str) -> None:
    """D1 / PEP 629: a client must refuse an unknown major version."""
    with pytest.raises(InvalidUpstreamResponse, match="version"):
        parse_json(json_file(), api=api)


@pytest.mark.parametrize("body", [
    b"{not json", b"[]", b'{"meta": {"api-version": "1.0"}}', b"\xff\xfe",
    b"[" * 100_000 + b"]" * 100_000,  # deeper than the JSON decoder's recursion limit
])
def test_malformed_json_is_an_invalid_upstream_response(body: bytes) -> None:
    with pytest.raises(InvalidUpstreamResponse):
        parse_project_page(body, JSON, PAGE_URL, "demo")


@pytest.mark.parametrize("bad", [
    {"url": "x"},  # no filename
    {"filename": "demo-1.1.tar.gz"},  # no url
    "demo-1.1.tar.gz",  # not an object
    {"filename": "demo-1.1.tar.gz", "url": "http://[::1"},  # a URL yarl cannot parse
    {"filename": "demo-1.1.tar.gz", "url": "file:///etc/passwd"},  # not http(s)
    {"filename": "demo-1.1.tar.gz", "url": "javascript:alert(1)"},
    {"filename": "demo-1.1.tar.gz", "url": 7},
])
def test_one_unreadable_json_entry_is_skipped_not_fatal(bad: Any) -> None:
    """One bad entry costs that entry only: the rest of the page is served."""
    page = parse_json(json_file(), bad)
    assert [f.filename for f in page.files] == ["demo-1.0-py3-none-any.whl"]


@pytest.mark.parametrize("href", ["http://[::1/demo-1.1.tar.gz", "file:///etc/demo-1.1.tar.gz",
                                  "javascript:alert(1)//demo-1.1.tar.gz"])
def test_one_unreadable_html_anchor_is_skipped_not_fatal(href: str) -> None:
    page = parse_html(f'<a href="{href}">demo-1.1.tar.gz</a>',
                      f'<a href="https://files.example/demo-1.0.tar.gz#sha256={SHA}">demo-1.0.tar.gz</a>')
    assert [f.filename for f in page.files] == ["demo-1.0.tar.gz"]


# File URLs are URLs (STANDARDS H3, G1, G2) ----------------------------------------------------------

URL_CASES = [
    # (href as listed, the absolute URL fetched upstream)
    ("https://files.example/f/demo-1.0.tar.gz", "https://files.example/f/demo-1.0.tar.gz"),  # other host
    ("/f/demo-1.0.tar.gz", "https://index.example/f/demo-1.0.tar.gz"),  # absolute path
    ("../../f/demo-1.0.tar.gz", "https://index.example/f/demo-1.0.tar.gz"),  # relative
    ("demo-1.0.tar.gz", "https://index.example/simple/demo/demo-1.0.tar.gz"),  # same directory
    ("//cdn.example/f/demo-1.0.tar.gz", "https://cdn.example/f/demo-1.0.tar.gz"),  # scheme-relative
    ("/f/demo-1.0.tar.gz?tok=abc&exp=1", "https://index.example/f/demo-1.0.tar.gz?tok=abc&exp=1"),  # signed
    ("/f/demo-1.0.tar.gz?sig=a%2Fb%3D", "https://index.example/f/demo-1.0.tar.gz?sig=a%2Fb%3D"),  # encoded query
    ("/f/demo%2B1-1.0.tar.gz", "https://index.example/f/demo%2B1-1.0.tar.gz"),  # encoded path kept as is
    ("/f/d%C3%A9mo-1.0.tar.gz", "https://index.example/f/d%C3%A9mo-1.0.tar.gz"),
]


@pytest.mark.parametrize(("href", "expected"), URL_CASES)
def test_html_file_urls_resolve_against_the_page_and_keep_query_and_encoding(href: str, expected: str) -> None:
    page = parse_html(f'<a href="{href}#sha256={SHA}">demo-1.0.tar.gz</a>')
    (file,) = page.files
    assert (file.url, file.hashes) == (expected, {"sha256": SHA})


@pytest.mark.parametrize(("href", "expected"), URL_CASES)
def test_json_file_urls_resolve_against_the_page_and_keep_query_and_encoding(href: str, expected: str) -> None:
    (file,) = parse_json(json_file("demo-1.0.tar.gz", url=href)).files
    assert file.url == expected


def test_html_base_element_changes_what_relative_links_resolve_against() -> None:
    """As pip does: a ``<base href>`` in the page is the base of its relative links."""
    body = (f'<html><head><base href="https://mirror.example/packages/"></head><body>'
            f'<a href="demo-1.0.tar.gz#sha256={SHA}">demo-1.0.tar.gz</a></body></html>').encode()
    (file,) = parse_project_page(body, HTML, PAGE_URL, "demo").files
    assert file.url == "https://mirror.example/packages/demo-1.0.tar.gz"


def test_the_filename_of_an_anchor_without_text_comes_from_the_url_path_not_its_query() -> None:
    (file,) = parse_html(f'<a href="/f/demo-1.0.tar.gz?tok=abc#sha256={SHA}"></a>').files
    assert file.filename == "demo-1.0.tar.gz"


# Everything upstream says survives (PEP 708, PEP 740, PEP 792, _last-serial) ------------------------


def test_json_project_keys_of_pep_708_740_792_survive() -> None:
    document = {
        "meta": {"api-version": "1.4", "_last-serial": 4242},
        "name": "demo", "versions": ["1.0"],
        "tracks": ["https://other.example/simple/demo/"],
        "alternate-locations": ["https://alt.example/simple/demo/", "/simple/demo-alt/"],
        "project-status": {"status": "quarantined", "reason": "malware reported"},
        "files": [json_file(provenance="https://index.example/integrity/demo/1.0/demo-1.0-py3-none-any.whl/provenance"),
                  json_file("demo-1.0.tar.gz", provenance=None)],
    }
    page = parse_project_page(json.dumps(document).encode(), JSON, PAGE_URL, "demo")
    assert page.tracks == ("https://other.example/simple/demo/",)
    assert page.alternate_locations == ("https://alt.example/simple/demo/", "https://index.example/simple/demo-alt/")
    assert (page.status, page.status_reason, page.last_serial) == ("quarantined", "malware reported", 4242)
    assert [f.provenance for f in page.files] == [
        "https://index.example/integrity/demo/1.0/demo-1.0-py3-none-any.whl/provenance", None]


def test_html_project_keys_of_pep_708_740_792_survive() -> None:
    body = (
        '<html><head><meta name="pypi:repository-version" content="1.4">'
        '<meta name="pypi:tracks" content="https://other.example/simple/demo/">'
        '<meta name="pypi:alternate-locations" content="https://alt.example/simple/demo/">'
        '<meta name="pypi:alternate-locations" content="https://alt2.example/simple/demo/">'
        '<meta name="pypi:project-status" content="archived">'
        '<meta name="pypi:project-status-reason" content="moved to demo2">'
        f'</head><body><a href="/f/demo-1.0.tar.gz#sha256={SHA}" data-provenance="/integrity/demo-1.0.tar.gz/provenance">'
        'demo-1.0.tar.gz</a></body></html>'
    ).encode()
    page = parse_project_page(body, HTML, PAGE_URL, "demo")
    assert page.tracks == ("https://other.example/simple/demo/",)
    assert page.alternate_locations == ("https://alt.example/simple/demo/", "https://alt2.example/simple/demo/")
    assert (page.status, page.status_reason) == ("archived", "moved to demo2")
    assert page.files[0].provenance == "https://index.example/integrity/demo-1.0.tar.gz/provenance"


@pytest.mark.parametrize("status", [{"status": "frozen"}, {"status": 3}, "quarantined", None])
def test_an_unknown_project_status_is_dropped(status: Any) -> None:
    """PEP 792 defines four statuses; anything else is not passed on as if it were one."""
    document = {"meta": {"api-version": "1.4"}, "name": "demo", "files": [], "project-status": status}
    page = parse_project_page(json.dumps(document).encode(), JSON, PAGE_URL, "demo")
    assert (page.status, page.status_reason) == (None, None)


@pytest.mark.parametrize("filename", ["../evil-1.0.whl", "a/b-1.0.tar.gz", ".hidden-1.0.tar.gz", ""])
def test_unsafe_filenames_are_dropped(filename: str) -> None:
    """A listing must never make the proxy write or serve outside its cache directory."""
    page = parse_json(json_file(), json_file(filename, url="https://files.example/x"))
    assert [f.filename for f in page.files] == ["demo-1.0-py3-none-any.whl"]


def test_duplicate_filenames_keep_the_first_entry() -> None:
    first = json_file(url="https://files.example/first")
    page = parse_json(first, json_file(url="https://files.example/second"))
    assert [f.url for f in page.files] == ["https://files.example/first"]


# HTML (PEP 503 and its extensions) ------------------------------------------------------------------


def test_html_page_with_relative_links_and_every_attribute() -> None:
    """G1: HTML-only upstreams with relative links; B2 hash fragment, B4 escaped requires-python,
    B5 yanked, B7 core metadata."""
    page = parse_html(
        f'<a href="../../packages/demo-1.0-py3-none-any.whl#sha256={SHA}" data-requires-python="&gt;=3.8,&lt;4"'
        f' data-yanked="bad build" data-core-metadata="sha256={META_SHA}">demo-1.0-py3-none-any.whl</a>',
        '<a href="demo-0.9.tar.gz">demo-0.9.tar.gz</a>',
    )
    wheel, sdist = page.files
    assert wheel.url == "https://index.example/packages/demo-1.0-py3-none-any.whl"
    assert wheel.hashes == {"sha256": SHA}
    assert wheel.requires_python == ">=3.8,<4"
    assert wheel.yanked_reason == "bad build"
    assert wheel.core_metadata == {"sha256": META_SHA}
    assert sdist.url == "https://index.example/simple/demo/demo-0.9.tar.gz"
    assert (sdist.hashes, sdist.requires_python, sdist.yanked_reason, sdist.core_metadata) == ({}, None, None, None)
    assert page.versions == ("0.9", "1.0")


@pytest.mark.parametrize(("attribute", "expected"), [
    ("", None),
    (f'data-core-metadata="sha256={META_SHA}"', {"sha256": META_SHA}),
    ('data-core-metadata="true"', {}),
    ("data-core-metadata", {}),
    ('data-core-metadata="false"', None),
    (f'data-dist-info-metadata="sha256={META_SHA}"', {"sha256": META_SHA}),  # PEP 714 fallback, G1
    (f'data-core-metadata="sha256={META_SHA}" data-dist-info-metadata="true"', {"sha256": META_SHA}),
])
def test_html_core_metadata(attribute: str, expected: dict[str, str] | None) -> None:
    """B7 / PEP 714: pip reads data-core-metadata first and falls back to data-dist-info-metadata."""
    page = parse_html(f'<a href="demo-1.0.tar.gz" {attribute}>demo-1.0.tar.gz</a>')
    assert page.files[0].core_metadata == expected


@pytest.mark.parametrize(("attribute", "expected"), [("", None), ("data-yanked", ""), ('data-yanked=""', ""),
                                                     ('data-yanked="reason &amp; more"', "reason & more")])
def test_html_yanked(attribute: str, expected: str | None) -> None:
    """B5 / PEP 592: the attribute's presence yanks; its value is the reason."""
    assert parse_html(f'<a href="demo-1.0.tar.gz" {attribute}>demo-1.0.tar.gz</a>').files[0].yanked_reason == expected


@pytest.mark.parametrize(("fragment", "hashes"), [
    (f"#sha256={SHA}", {"sha256": SHA}),
    ("#md5=" + "0f" * 16, {"md5": "0f" * 16}),
    ("#SHA384=" + "AA" * 48, {"sha384": "aa" * 48}),
    ("#egg=demo", {}),
    ("", {}),
])
def test_html_hash_fragment(fragment: str, hashes: dict[str, str]) -> None:
    """B2: the fragment names any hashlib algorithm; something else is not a hash."""
    page = parse_html(f'<a href="demo-1.0.tar.gz{fragment}">demo-1.0.tar.gz</a>')
    assert page.files[0].hashes == hashes
    assert page.files[0].url == "https://index.example/simple/demo/demo-1.0.tar.gz"


def test_html_anchor_without_text_takes_the_filename_from_the_url() -> None:
    page = parse_html('<a href="https://files.example/p/demo-1.0.tar.gz#sha256=' + SHA + '"></a>')
    assert page.files[0].filename == "demo-1.0.tar.gz"


def test_html_anchors_without_href_are_ignored() -> None:
    assert parse_html('<a name="top">top</a>', '<a href="demo-1.0.tar.gz">demo-1.0.tar.gz</a>').versions == ("1.0",)


def test_html_unknown_major_version_is_refused() -> None:
    """D1 / B6: the repository-version meta is checked like the JSON one."""
    with pytest.raises(InvalidUpstreamResponse):
        parse_project_page(html_page('<a href="demo-1.0.tar.gz">demo-1.0.tar.gz</a>', api="2.0"), HTML,
                           PAGE_URL, "demo")


def test_html_without_version_meta_is_version_one() -> None:
    body = b'<html><body><a href="demo-1.0.tar.gz">demo-1.0.tar.gz</a></body></html>'
    assert parse_project_page(body, "text/html", PAGE_URL, "demo").files


def test_json_and_html_of_the_same_listing_parse_to_the_same_model() -> None:
    """G1: whichever flavour upstream speaks, clients of the proxy see one page."""
    from_json = parse_json(json_file(
        "demo-1.0.tar.gz", url="https://files.example/demo-1.0.tar.gz",
        **{"requires-python": ">=3.8", "core-metadata": {"sha256": META_SHA}},
    ), api="1.0")
    from_html = parse_html(
        f'<a href="https://files.example/demo-1.0.tar.gz#sha256={SHA}" data-requires-python="&gt;=3.8"'
        f' data-dist-info-metadata="sha256={META_SHA}">demo-1.0.tar.gz</a>'
    )
    assert from_json == from_html


# Versions from filenames (A4) -----------------------------------------------------------------------


@pytest.mark.parametrize(("filename", "version"), [
    ("demo_pkg-1.0-py3-none-any.whl", "1.0"),
    ("demo_pkg-1.0-7-py3-none-any.whl", "1.0"),  # build tag
    ("other-1.0-py3-none-any.whl", None),
    ("Demo_Pkg-2.0rc1-cp311-cp311-manylinux_2_17_x86_64.whl", "2.0rc1"),
    ("demo_pkg-1.0.tar.gz", "1.0"),
    ("Demo.Pkg-1.0.zip", "1.0"),  # legacy .zip sdist
    ("demo-pkg-1.0.post1.tar.bz2", "1.0.post1"),  # legacy hyphenated, other archive
    ("demo-pkg-2004d.tar.gz", "2004d"),  # not PEP 440: still listed
    ("demo-pkg-1.0.exe", None),
    ("other-1.0.tar.gz", None),
])
def test_version_from_filename(filename: str, version: str | None) -> None:
    """A4: wheels and PEP 625 sdists by packaging; legacy sdists by stripping the project's name."""
    assert version_from_filename(filename, "demo-pkg") == version


# The root list ----------------------------------------------------------------------------------------


def test_project_list_json() -> None:
    """C3."""
    body = json.dumps({"meta": {"api-version": "1.0"},
                       "projects": [{"name": "Frob"}, {"name": ""}, {"nope": 1}, {"name": "a.b"}]}).encode()
    assert parse_project_list(body, JSON) == ["Frob", "a.b"]


def test_project_list_html() -> None:
    """B1."""
    body = b'<html><body><a href="/simple/frob/">Frob</a>\n<a href="/simple/a-b/">a.b</a><a href="x"></a></body></html>'
    assert parse_project_list(body, "text/html") == ["Frob", "a.b"]


def test_project_list_json_without_projects_is_invalid() -> None:
    with pytest.raises(InvalidUpstreamResponse):
        parse_project_list(b'{"meta": {"api-version": "1.0"}}', JSON)


# The cache's round trip --------------------------------------------------------------------------------


def test_index_page_json_round_trip() -> None:
    """What the page cache writes is what it reads back, field for field."""
    page = parse_json(
        json_file(**{"requires-python": ">=3.8", "yanked": True, "size": 10,
                     "upload-time": "2026-11-24T10:20:30.123456Z", "core-metadata": True}),
        json_file("demo-0.9.tar.gz"), versions=["0.9", "1.0"],
    )
    assert IndexPage.from_json(json.loads(json.dumps(page.to_json()))) == page
