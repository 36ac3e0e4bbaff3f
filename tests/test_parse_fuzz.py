"""Fuzzing the upstream page parser (issue 12): whatever upstream sends, parsing either gives a page
whose every file is safe to fetch and store, or raises InvalidUpstreamResponse (served stale, with
back-off) — never another exception, which would be a 500. Deterministic (derandomized) and bounded."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from proxy.core.errors import InvalidUpstreamResponse
from proxy.core.indexpage import IndexPage
from proxy.core.names import check_safe_filename
from proxy.core.parse import parse_project_list, parse_project_page

PAGE_URL = "https://index.example/simple/demo/"
JSON = "application/vnd.pypi.simple.v1+json"
FUZZ = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)
urls = st.sampled_from(["https://files.example/f/demo-1.0.tar.gz", "/f/demo-1.0.tar.gz?tok=1", "//cdn/x.whl",
                        "../x.zip#sha256=ab", "http://[::1", "file:///etc/passwd", "javascript:alert(1)",
                        "", "%zz", "https://h:99999/x"]) | st.text(max_size=30)
filenames = st.sampled_from(["demo-1.0.tar.gz", "demo-1.0-py3-none-any.whl", "../evil.whl", ".hidden",
                             "a/b.whl", "", "x" * 300]) | st.text(max_size=30)
file_entries = st.fixed_dictionaries({}, optional={
    "filename": filenames | json_values, "url": urls | json_values, "hashes": json_values
    | st.dictionaries(st.sampled_from(["sha256", "md5", "SHA256"]), st.text(max_size=64) | json_values),
    "requires-python": json_values, "yanked": json_values, "size": json_values, "upload-time": json_values,
    "core-metadata": json_values, "dist-info-metadata": json_values, "provenance": json_values | urls,
})
documents = st.fixed_dictionaries({}, optional={
    "meta": st.fixed_dictionaries({}, optional={"api-version": st.sampled_from(["1.0", "1.4", "2.0", ""])
                                                | json_values, "_last-serial": json_values}) | json_values,
    "name": json_values, "files": st.lists(file_entries | json_values, max_size=6) | json_values,
    "versions": json_values, "tracks": json_values | st.lists(urls, max_size=3),
    "alternate-locations": json_values | st.lists(urls, max_size=3), "project-status": json_values,
})


def assert_safe(page: IndexPage) -> None:
    """Every file the page lists can be stored (a safe filename) and fetched (an http(s) URL)."""
    assert page.name == "demo"
    for file in page.files:
        check_safe_filename(file.filename)
        assert URL(file.url).scheme in ("http", "https") and URL(file.url).host
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in file.hashes.items())
        assert file.size is None or (isinstance(file.size, int) and file.size >= 0)
        assert file.provenance is None or URL(file.provenance).scheme in ("http", "https")
    for url in (*page.tracks, *page.alternate_locations):
        assert URL(url).scheme in ("http", "https")


def parse_or_refuse(body: bytes, content_type: str) -> None:
    try:
        page = parse_project_page(body, content_type, PAGE_URL, "Demo")
    except InvalidUpstreamResponse:
        return
    assert_safe(page)


@FUZZ
@given(documents)
def test_any_json_document_parses_safely_or_is_invalid_upstream(document: dict[str, Any]) -> None:
    parse_or_refuse(json.dumps(document).encode(), JSON)


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_as_json_parse_safely_or_are_invalid_upstream(body: bytes) -> None:
    parse_or_refuse(body, JSON)


anchors = st.builds(
    lambda href, attrs, text: f'<a href="{href}" {attrs}>{text}</a>',
    urls, st.sampled_from(["", 'data-yanked=""', 'data-core-metadata="sha256=ab"', 'data-core-metadata',
                           'data-dist-info-metadata="true"', 'data-requires-python="&gt;=3"',
                           'data-provenance="../p"', 'data-provenance="javascript:x"']),
    filenames,
)
html_heads = st.lists(st.sampled_from([
    '<meta name="pypi:repository-version" content="1.0">', '<meta name="pypi:repository-version" content="2.0">',
    '<meta name="pypi:tracks" content="https://t/">', '<meta name="pypi:tracks" content="file:///x">',
    '<meta name="pypi:project-status" content="quarantined">', '<base href="https://mirror/x/">',
    '<base href="http://[::1">', "<a", "</a>", "<![CDATA[", "<!--", "&#xffffff;",
]), max_size=4)


@FUZZ
@given(html_heads, st.lists(anchors | st.text(max_size=30), max_size=8))
def test_any_html_page_parses_safely_or_is_invalid_upstream(head: list[str], body: list[str]) -> None:
    page = f"<html><head>{''.join(head)}</head><body>{''.join(body)}</body></html>"
    parse_or_refuse(page.encode(), "text/html")


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_as_html_parse_safely_or_are_invalid_upstream(body: bytes) -> None:
    parse_or_refuse(body, "text/html; charset=utf-8")


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([JSON, "text/html"]))
def test_any_project_list_parses_or_is_invalid_upstream(body: bytes, content_type: str) -> None:
    try:
        names = parse_project_list(body, content_type)
    except InvalidUpstreamResponse:
        return
    assert all(isinstance(name, str) and name for name in names)


def test_the_fuzz_strategies_reach_both_outcomes() -> None:
    """The property tests are only worth something if they see pages and refusals alike."""
    seen: set[str] = set()

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(documents)
    def probe(document: dict[str, Any]) -> None:
        try:
            page = parse_project_page(json.dumps(document).encode(), JSON, PAGE_URL, "demo")
        except InvalidUpstreamResponse:
            seen.add("refused")
            return
        seen.add("page with files" if page.files else "page")

    probe()
    assert seen == {"refused", "page", "page with files"}
