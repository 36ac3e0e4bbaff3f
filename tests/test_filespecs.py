"""Which upstream URL serves a file, and whether its bytes can be verified (issue 12 M7): pure."""

from __future__ import annotations

import pytest

from proxy.core.errors import ProjectNotFound, UpstreamRefused
from proxy.core.indexpage import IndexFile, IndexPage
from proxy.upstream.filespecs import file_spec

SHA = "ab" * 32
WHEEL = "demo-1.0-py3-none-any.whl"
SDIST = "demo-1.0.tar.gz"
BASE = "https://files.example/p/"


def page(hashes: dict[str, str], core_metadata: dict[str, str] | None, provenance: str | None = None) -> IndexPage:
    files = tuple(IndexFile(filename=name, url=BASE + name + "?tok=1", hashes=hashes, core_metadata=core_metadata,
                            provenance=provenance) for name in (WHEEL, SDIST))
    return IndexPage(name="demo", files=files, versions=("1.0",))


@pytest.mark.parametrize("hashes", [{"sha256": SHA}, {"sha512": "cd" * 64}, {"md5": "ef" * 16}])
@pytest.mark.parametrize("filename", [WHEEL, SDIST])
def test_a_file_with_a_checkable_hash_is_fetched_with_it(hashes: dict[str, str], filename: str) -> None:
    spec = file_spec(page(hashes, None), filename)
    assert (spec.url, spec.hashes) == (BASE + filename + "?tok=1", hashes)


@pytest.mark.parametrize("hashes", [{}, {"whirlpool-9000": SHA}])  # none, or none this server can check
@pytest.mark.parametrize("filename", [WHEEL, SDIST, WHEEL + ".metadata"])
def test_a_file_without_a_checkable_hash_is_refused_unless_configured(hashes: dict[str, str], filename: str) -> None:
    listing = page(hashes, None)
    with pytest.raises(UpstreamRefused) as refused:
        file_spec(listing, filename)
    assert refused.value.rule == "cache_unverified_files"
    assert file_spec(listing, filename, cache_unverified=True).filename == filename


def test_listed_metadata_with_a_hash_is_upstreams_file() -> None:
    spec = file_spec(page({}, {"sha256": SHA}), SDIST + ".metadata")  # the sdist's own hash does not matter
    assert (spec.url, spec.hashes, spec.metadata_of) == (BASE + SDIST + ".metadata?tok=1", {"sha256": SHA}, None)


def test_metadata_offered_without_a_hash_comes_from_the_verified_wheel() -> None:
    listing = page({"sha256": SHA}, {})
    spec = file_spec(listing, WHEEL + ".metadata")
    assert spec.metadata_of is not None and spec.metadata_of.hashes == {"sha256": SHA}
    assert spec.metadata_of.derive_metadata  # the copy read by ranges is checked against the wheel later
    with pytest.raises(UpstreamRefused):  # an sdist's: nothing to make it from, nothing to verify it with
        file_spec(listing, SDIST + ".metadata")
    assert file_spec(listing, WHEEL + ".metadata", cache_unverified=True).url == BASE + WHEEL + ".metadata?tok=1"


def test_provenance_is_fetched_from_where_it_is_listed() -> None:
    spec = file_spec(page({}, None, provenance="https://files.example/prov"), WHEEL + ".provenance")
    assert (spec.url, spec.hashes) == ("https://files.example/prov", {})


@pytest.mark.parametrize("filename", ["demo-2.0.tar.gz", SDIST + ".provenance", "other.metadata"])
def test_only_listed_files_are_fetched(filename: str) -> None:
    with pytest.raises(ProjectNotFound):
        file_spec(page({"sha256": SHA}, None), filename)
