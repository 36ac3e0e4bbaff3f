"""The frozen models: release merging by PEP 440 (A3), yank state (B5/C4), and the JSON round trip."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, replace
from datetime import datetime, timedelta, timezone

import pytest

from proxy.core.indexpage import IndexFile
from proxy.core.models import PrivateProject, ReleaseInfo, StoredFile, version_key
from proxy.core.timestamps import iso_z, parse_iso

WHEN = datetime(2026, 11, 24, 10, 20, 30, 123456, tzinfo=timezone.utc)


def stored(filename: str, version: str, yanked: str | None = None) -> StoredFile:
    return StoredFile(filename, version, "bdist_wheel", "py3", 10, "aa" * 32, "bb" * 16, "cc" * 32,
                      WHEN, "alice", requires_python=">=3.9", metadata_sha256="dd" * 32, yanked_reason=yanked)


EMPTY = PrivateProject("demo", "Demo")


def test_a3_with_file_merges_equal_versions_into_the_first_release() -> None:
    """A3: '1.0' and '1.0.0' are one release, named as first uploaded."""
    project = EMPTY.with_file(stored("demo-1.0.tar.gz", "1.0"), ReleaseInfo("1.0", summary="first"))
    project = project.with_file(stored("demo-1.0.0-py3-none-any.whl", "1.0.0"), ReleaseInfo("1.0.0", summary="second"))
    assert [r.version for r in project.releases] == ["1.0"]
    assert [r.summary for r in project.releases] == ["first"]
    assert [f.version for f in project.files] == ["1.0", "1.0"]
    assert project.versions() == ["1.0"]
    assert project.serial == 2


def test_with_file_adds_a_new_release_for_a_new_version() -> None:
    project = EMPTY.with_file(stored("demo-1.0.tar.gz", "1.0"), ReleaseInfo("1.0"))
    project = project.with_file(stored("demo-1.1.tar.gz", "1.1"), ReleaseInfo("1.1"))
    assert [r.version for r in project.releases] == ["1.0", "1.1"]
    assert EMPTY.files == () and EMPTY.serial == 0, "frozen: the original is unchanged"


@pytest.mark.parametrize(("asked", "found"), [("1.0", "1.0"), ("1.0.0", "1.0"), ("1.0.0.0", "1.0"), ("1.1", None)])
def test_a3_release_lookup_by_pep440_equality(asked: str, found: str | None) -> None:
    project = EMPTY.with_file(stored("demo-1.0.tar.gz", "1.0"), ReleaseInfo("1.0"))
    release = project.release(asked)
    assert (release.version if release else None) == found


def test_a3_versions_are_pep440_ordered() -> None:
    project = EMPTY
    for version in ("1.10", "1.0rc1", "1.9", "1.0", "1.0.post1"):
        project = project.with_file(stored(f"demo-{version}.tar.gz", version), ReleaseInfo(version))
    assert project.versions() == ["1.0rc1", "1.0", "1.0.post1", "1.9", "1.10"]


def test_without_files_drops_releases_left_without_files() -> None:
    project = EMPTY.with_file(stored("demo-1.0.tar.gz", "1.0"), ReleaseInfo("1.0"))
    project = project.with_file(stored("demo-1.0-py3-none-any.whl", "1.0"), ReleaseInfo("1.0"))
    project = project.with_file(stored("demo-2.0.tar.gz", "2.0"), ReleaseInfo("2.0"))
    one_left = project.without_files({"demo-1.0.tar.gz"})
    assert [r.version for r in one_left.releases] == ["1.0", "2.0"]
    none_left = one_left.without_files({"demo-1.0-py3-none-any.whl"})
    assert [r.version for r in none_left.releases] == ["2.0"]
    assert none_left.versions() == ["2.0"]
    assert none_left.serial == project.serial + 2


@pytest.mark.parametrize(("reason", "yanked"), [(None, False), ("", True), ("broken", True)])
def test_b5_c4_yank_state(reason: str | None, yanked: bool) -> None:
    """B5/C4: None is 'not yanked'; an empty string is 'yanked without a reason'."""
    project = EMPTY.with_file(stored("demo-1.0.tar.gz", "1.0"), ReleaseInfo("1.0"))
    file = project.with_yank({"demo-1.0.tar.gz"}, reason).files[0]
    assert file.yanked is yanked
    assert file.yanked_reason == reason
    assert IndexFile("f", "u", yanked_reason=reason).yanked is yanked


def test_with_yank_touches_only_the_named_files() -> None:
    project = EMPTY.with_file(stored("a-1.0.tar.gz", "1.0"), ReleaseInfo("1.0"))
    project = project.with_file(stored("a-1.0-py3-none-any.whl", "1.0"), ReleaseInfo("1.0"))
    yanked = project.with_yank({"a-1.0.tar.gz"}, "why")
    assert {f.filename: f.yanked_reason for f in yanked.files} == {"a-1.0.tar.gz": "why", "a-1.0-py3-none-any.whl": None}


def test_json_round_trip() -> None:
    """project.json: to_json, through real JSON text, and back gives an equal project."""
    info = ReleaseInfo(
        "1.0", summary="s", description="d\n\nmore", description_content_type="text/markdown",
        requires_python=">=3.9", classifiers=("A :: B",), requires_dist=("x>=1", "y; extra == 'ui'"),
        provides_extra=("ui",), project_urls=(("Home", "https://h.invalid"), ("Src", "https://s.invalid")),
        platform=("any",),
    )
    project = EMPTY.with_file(stored("demo-1.0.tar.gz", "1.0"), info)
    project = project.with_file(stored("demo-1.0-py3-none-any.whl", "1.0", yanked=""), info)
    text = json.dumps(project.to_json())
    assert PrivateProject.from_json(json.loads(text)) == project


def test_stored_file_json_keeps_aware_utc_time() -> None:
    data = stored("demo-1.0.tar.gz", "1.0").to_json()
    assert data["upload_time"] == "2026-11-24T10:20:30.123456Z"
    assert StoredFile.from_json(data).upload_time == WHEN
    assert StoredFile.from_json(data).upload_time.utcoffset() == timedelta(0)


def test_from_json_tolerates_missing_optional_keys() -> None:
    project = PrivateProject.from_json({"name": "demo", "display_name": "Demo"})
    assert project == PrivateProject("demo", "Demo")


@pytest.mark.parametrize(("moment", "text"), [
    (WHEN, "2026-11-24T10:20:30.123456Z"),
    (datetime(2026, 1, 1, tzinfo=timezone.utc), "2026-01-01T00:00:00.000000Z"),
    (datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))), "2026-01-01T00:00:00.000000Z"),
])
def test_c5_iso_z(moment: datetime, text: str) -> None:
    """C5 (PEP 700): upload-time is ISO 8601 in UTC with a Z."""
    assert iso_z(moment) == text
    assert parse_iso(text) == moment


def test_a3_version_key_puts_invalid_versions_first() -> None:
    assert sorted(["2.0", "legacy-b", "1.0", "legacy-a"], key=version_key) == ["legacy-a", "legacy-b", "1.0", "2.0"]


def test_models_are_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        EMPTY.name = "other"  # type: ignore[misc]


# --- H1: one distribution per identity ------------------------------------------------------------


def typed(filename: str, version: str, packagetype: str = "bdist_wheel", sha: str = "aa") -> StoredFile:
    return replace(stored(filename, version), packagetype=packagetype, sha256=sha * 32)


@pytest.mark.parametrize(("first", "second"), [
    pytest.param(("demo-1.0.0-py3-none-any.whl", "1.0.0"), ("Demo-1.0.0-py3-none-any.whl", "1.0.0"), id="name-case"),
    pytest.param(("demo_pkg-1.0-py3-none-any.whl", "1.0"), ("demo.pkg-1.0-py3-none-any.whl", "1.0"), id="name-separator"),
    pytest.param(("demo-1.0.0-py3-none-any.whl", "1.0.0"), ("demo-01.0.0-py3-none-any.whl", "01.0.0"), id="leading-zero"),
    pytest.param(("demo-1.0.0-py3-none-any.whl", "1.0.0"), ("demo-1.0-py3-none-any.whl", "1.0"), id="trailing-zero"),
    pytest.param(("demo-1.0-py3-none-any.whl", "1.0"), ("demo-1.0.0.0-py3-none-any.whl", "1.0.0.0"), id="more-zeros"),
    pytest.param(("demo-1.0-py3-none-any.whl", "1.0"), ("demo-v1.0-py3-none-any.whl", "v1.0"), id="v-prefix"),
    pytest.param(("demo-1.0.post1-py3-none-any.whl", "1.0.post1"), ("demo-1.0_post1-py3-none-any.whl", "1.0-post1"),
                 id="post-spelling"),
    pytest.param(("demo-1.0-py2.py3-none-any.whl", "1.0"), ("demo-1.0-py3.py2-none-any.whl", "1.0"), id="tag-order"),
    pytest.param(("demo-1.0-1-py3-none-any.whl", "1.0"), ("demo-1.0-01-py3-none-any.whl", "1.0"), id="build-tag-spelling"),
    pytest.param(("demo-1.0.tar.gz", "1.0"), ("Demo-1.0.0.tar.gz", "1.0.0"), id="sdist-spelling"),
])
def test_h1_same_identity_is_a_duplicate(first: tuple[str, str], second: tuple[str, str]) -> None:
    """H1 (warehouse): name normalised, version PEP 440, build tag and tag *set* make a wheel; an
    sdist is its release. Another filename for the same identity is a duplicate, whatever its bytes."""
    kind = "sdist" if first[0].endswith(".tar.gz") else "bdist_wheel"
    existing = typed(*first, packagetype=kind)
    project = EMPTY.with_file(existing, ReleaseInfo(first[1]))
    new = typed(*second, packagetype=kind, sha="ee")
    assert new.identity == existing.identity
    assert project.duplicate_of(new) == project.files[0]


@pytest.mark.parametrize(("first", "second"), [
    pytest.param("demo-1.0-py3-none-any.whl", "demo-1.0-1-py3-none-any.whl", id="build-tag-added"),
    pytest.param("demo-1.0-1-py3-none-any.whl", "demo-1.0-2-py3-none-any.whl", id="build-tag-differs"),
    pytest.param("demo-1.0-py3-none-any.whl", "demo-1.0-py2.py3-none-any.whl", id="tag-set-differs"),
    pytest.param("demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
                 id="interpreter-differs"),
    pytest.param("demo-1.0-py3-none-any.whl", "demo-1.0.1-py3-none-any.whl", id="version-differs"),
    pytest.param("demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz", id="wheel-and-sdist"),
    pytest.param("demo-1.0.tar.gz", "demo-1.0.post1.tar.gz", id="sdists-of-two-releases"),
])
def test_h1_different_identity_is_not_a_duplicate(first: str, second: str) -> None:
    def kind(name: str) -> str:
        return "sdist" if name.endswith(".tar.gz") else "bdist_wheel"

    version = first.split("-")[1].removesuffix(".tar.gz")
    project = EMPTY.with_file(typed(first, version, kind(first)), ReleaseInfo(version))
    other_version = second.split("-")[1].removesuffix(".tar.gz")
    assert project.duplicate_of(typed(second, other_version, kind(second), sha="ee")) is None


def test_h1_same_bytes_under_another_identity_is_a_duplicate() -> None:
    """warehouse refuses a known digest under a new filename: one content, one name."""
    project = EMPTY.with_file(typed("demo-1.0-py3-none-any.whl", "1.0"), ReleaseInfo("1.0"))
    same_bytes = typed("demo-1.0-py2.py3-none-any.whl", "1.0")
    assert project.duplicate_of(same_bytes) == project.files[0]


def test_h1_same_filename_is_found_first() -> None:
    """E4: the file with the very filename is the one compared, so identical bytes are a no-op."""
    project = EMPTY.with_file(typed("Demo-1.0-py3-none-any.whl", "1.0"), ReleaseInfo("1.0"))
    project = project.with_file(typed("demo-1.0-1-py3-none-any.whl", "1.0", sha="bb"), ReleaseInfo("1.0"))
    found = project.duplicate_of(typed("demo-1.0-1-py3-none-any.whl", "1.0", sha="bb"))
    assert found is not None and found.filename == "demo-1.0-1-py3-none-any.whl"


# --- Stored metadata written by older versions -----------------------------------------------------


def test_release_info_written_before_dynamic_and_license_files_still_loads() -> None:
    """A project.json from before these fields existed loads, with their defaults."""
    old = {"version": "1.0", "summary": "s", "classifiers": ["A :: B"], "project_urls": [["Home", "https://h"]],
           "requires_dist": [], "provides_extra": [], "platform": []}
    info = ReleaseInfo.from_json(old)
    assert info == ReleaseInfo("1.0", summary="s", classifiers=("A :: B",), project_urls=(("Home", "https://h"),))
    assert (info.dynamic, info.license_files) == ((), ())


def test_release_info_round_trips_the_new_fields_and_exact_text() -> None:
    info = ReleaseInfo("1.0", summary="Café", author="Jürgen", dynamic=("Requires-Dist",),
                       license_expression="MIT", license_files=("LICENSE", "NOTICE"))
    assert ReleaseInfo.from_json(json.loads(json.dumps(info.to_json()))) == info
