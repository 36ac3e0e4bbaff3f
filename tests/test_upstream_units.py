"""The pure and small pieces behind the upstream fallback, tested without a server.

Merging and shadowing (dependency confusion), the LRU of rendered pages, the page cache on disk,
URL masking for logs, and the proxied page's rewritten links (the file cache: test_filecache.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from yarl import URL

from proxy.core import render
from proxy.core.indexpage import IndexFile, IndexPage
from proxy.core.merge import Source, project_names, source_for
from proxy.storage.upstream_pages import CachedPage, CachedProjectList, PageCache, upstream_id
from proxy.upstream.downloads import expected_digest
from proxy.upstream.responses import masked

SHA = "ab" * 32


# Merge and shadow -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "is_private", "reserved", "enabled", "source"), [
    ("requests", False, (), True, Source.UPSTREAM),
    ("requests", True, (), True, Source.PRIVATE),  # a private release shadows the public project
    ("acme-tools", False, ("acme-*",), True, Source.NONE),  # reserved: never looked up upstream
    ("acme-tools", True, ("acme-*",), True, Source.PRIVATE),  # ... until a private release exists
    ("acmetools", False, ("acme-*",), True, Source.UPSTREAM),
    ("requests", False, (), False, Source.NONE),  # upstream switched off
    ("requests", True, (), False, Source.PRIVATE),
])
def test_source_for(name: str, is_private: bool, reserved: tuple[str, ...], enabled: bool, source: Source) -> None:
    assert source_for(name, is_private=is_private, reserved=reserved, upstream_enabled=enabled) is source


def test_project_names_merges_one_per_normalised_name_private_spelling_first() -> None:
    merged = project_names(["Acme.Tools", "Requests"], ["requests", "acme-tools", "Flask", "acme-secret", "a_b"],
                           reserved=["acme-*"])
    assert merged == ["a_b", "Acme.Tools", "Flask", "Requests"]


def test_project_names_without_upstream_is_the_private_list() -> None:
    assert project_names(["b", "a"], [], reserved=[]) == ["a", "b"]


def test_l3_upstream_names_that_are_not_project_names_are_left_out() -> None:
    """L3 (STANDARDS A2): an upstream's list may name anything; the root page links each name."""
    public = ["javascript:alert(1)//", "<script>alert(1)</script>", "a b", "-leading", "trailing-", "..", "",
              "fo/o", "naïve", "x\ny", "data:text/html,x", "Good.Name", "ok"]
    assert project_names(["Mine"], public, reserved=[]) == ["Good.Name", "Mine", "ok"]


# The page cache on disk -------------------------------------------------------------------------------------


def sample_page() -> IndexPage:
    return IndexPage(name="demo", versions=("1.0",), files=(
        IndexFile("demo-1.0.tar.gz", "https://files.example/demo-1.0.tar.gz", {"sha256": SHA}, size=3),
    ))


def test_page_cache_round_trip_survives_reopening(tmp_path: Path) -> None:
    record = CachedPage(200, 1700000000.5, sample_page(), etag='"e1"', last_modified="Mon", content_id="c1")
    cache = PageCache(tmp_path, size_limit=2**20)
    cache.store_page("demo", record)
    cache.store_project_list(CachedProjectList(1.0, ("A", "b"), etag='"l"'))
    cache.close()
    reopened = PageCache(tmp_path, size_limit=2**20)
    assert reopened.page("demo") == record
    assert reopened.project_list() == CachedProjectList(1.0, ("A", "b"), etag='"l"')
    assert reopened.page("other") is None
    assert reopened.volume() > 0
    reopened.close()


def test_page_cache_remembers_not_found(tmp_path: Path) -> None:
    cache = PageCache(tmp_path, size_limit=2**20)
    cache.store_page("nope", CachedPage(404, 5.0))
    assert cache.page("nope") == CachedPage(404, 5.0)
    cache.close()


@pytest.mark.parametrize("raw", [b"{broken", json.dumps({"format": 999, "status": 200}).encode(), b"[]", "text"])
def test_page_cache_unreadable_or_other_format_is_a_miss(tmp_path: Path, raw: object) -> None:
    """A record written by another version, or damaged, is fetched again instead of failing requests."""
    cache = PageCache(tmp_path, size_limit=2**20)
    cache._cache.set("page:demo", raw)
    assert cache.page("demo") is None
    cache.close()


@pytest.mark.parametrize(("stored_for", "read_for", "found"), [
    ("https://pypi.org/simple", "https://pypi.org/simple/", True),  # the same index, however spelt
    ("https://pypi.org/simple", "https://ci:s3cret@pypi.org/simple", True),  # credentials are not the index
    ("https://pypi.org/simple", "https://mirror.example/simple", False),
    ("https://pypi.org/simple", "https://pypi.org/other/simple", False),
    ("http://10.0.0.5:3141/root/pypi/+simple", "http://10.0.0.5:3142/root/pypi/+simple", False),
])
def test_l8_a_record_written_for_another_upstream_is_a_miss(tmp_path: Path, stored_for: str, read_for: str,
                                                            found: bool) -> None:
    """L8: cached listings send downloads to the upstream they came from: after upstream.url changes
    they must not be served, fresh or stale."""
    cache = PageCache(tmp_path, size_limit=2**20)
    record = CachedPage(200, 1.0, sample_page(), upstream=upstream_id(stored_for))
    names = CachedProjectList(1.0, ("demo",), upstream=upstream_id(stored_for))
    cache.store_page("demo", record)
    cache.store_project_list(names)
    assert cache.page("demo", upstream_id(read_for)) == (record if found else None)
    assert cache.project_list(upstream_id(read_for)) == (names if found else None)
    assert cache.page("demo") == record  # `pypi-proxy check` reads whatever is cached
    cache.close()


def test_l8_records_of_the_format_before_it_are_misses(tmp_path: Path) -> None:
    """Format 1 records do not say which upstream they came from: fetched again, never trusted."""
    cache = PageCache(tmp_path, size_limit=2**20)
    old = {"format": 1, "status": 200, "fetched_at": 1.0, "page": sample_page().to_json(), "etag": None,
           "last_modified": None, "content_id": "c"}
    cache._cache.set("page:demo", json.dumps(old).encode())
    assert cache.page("demo", upstream_id("https://pypi.org/simple")) is None
    cache.close()


@pytest.mark.parametrize(("hashes", "expected"), [
    ({"md5": "aa", "sha256": "BB"}, ("sha256", "bb")),
    ({"sha512": "cc", "sha256": "bb"}, ("sha256", "bb")),
    ({"sha512": "cc", "md5": "aa"}, ("sha512", "cc")),
    ({"md5": "aa"}, ("md5", "aa")),
    ({"crc32": "aa"}, None),
    ({}, None),
])
def test_expected_digest_prefers_sha256_then_the_strongest(hashes: dict[str, str], expected: tuple[str, str] | None) -> None:
    assert expected_digest(hashes) == expected


# Logs and links ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "shown"), [
    ("https://user:secret@index.example/simple/", "https://user:***@index.example/simple/"),
    ("https://files.example/a.whl?X-Amz-Signature=abc#frag", "https://files.example/a.whl"),
    ("https://index.example/simple/demo/", "https://index.example/simple/demo/"),
])
def test_masked_urls_never_show_secrets(url: str, shown: str) -> None:
    assert masked(URL(url)) == shown


def test_proxied_page_points_every_file_at_the_proxy() -> None:
    """Upstream file links are rewritten to the proxy's own file URLs; nothing else changes."""
    page = IndexPage(name="demo", versions=("1.0",), files=(
        IndexFile("demo-1.0+local.tar.gz", "https://files.example/x/demo-1.0+local.tar.gz", {"sha256": SHA},
                  core_metadata={}, size=3),
    ))
    (file,) = render.proxied_index_page(page).files
    assert file.url == "../../files/demo/demo-1.0%2Blocal.tar.gz"
    assert (file.hashes, file.core_metadata, file.size) == ({"sha256": SHA}, {}, 3)


def test_core_metadata_offered_without_a_hash_renders_as_true() -> None:
    """PEP 658/714: an upstream file whose metadata hash is unknown is still announced."""
    page = IndexPage(name="demo", versions=("1.0",), files=(IndexFile("demo-1.0.tar.gz", "x", core_metadata={}),))
    document = json.loads(render.project_json(page))
    assert document["files"][0]["core-metadata"] is True
    assert document["files"][0]["dist-info-metadata"] is True
    assert b'data-core-metadata="true"' in render.project_html(page)
