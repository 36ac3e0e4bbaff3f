"""PyPI's JSON API documents for private and upstream projects (STANDARDS F1-F3)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from proxy.core import jsonapi
from proxy.core.indexpage import IndexFile, IndexPage
from proxy.core.models import PrivateProject, ReleaseInfo
from tests.test_render import WHEN, project, stored

# --- PyPI's JSON API ------------------------------------------------------------------------------


@pytest.mark.parametrize(("versions", "expected"), [
    pytest.param([("1.0", None), ("1.10", None), ("1.9", None)], "1.10", id="pep440-not-string-order"),
    pytest.param([("1.0", None), ("2.0rc1", None)], "1.0", id="skip-prerelease"),
    pytest.param([("1.0", None), ("2.0.dev1", None)], "1.0", id="skip-dev"),
    pytest.param([("1.0", None), ("1.0.post1", None)], "1.0.post1", id="post-is-final"),
    pytest.param([("1.0", None), ("1.1", "bad")], "1.0", id="skip-yanked"),
    pytest.param([("2.0rc1", None)], "2.0rc1", id="only-prereleases"),
    pytest.param([("1.0", "bad"), ("2.0rc1", None)], "2.0rc1", id="unyanked-prerelease-over-yanked-final"),
    pytest.param([("1.0", "bad")], "1.0", id="all-yanked"),
])
def test_f2_current_version(versions: list[tuple[str, str | None]], expected: str) -> None:
    """F2: info.version is the newest non-yanked, non-pre-release version by PEP 440."""
    assert jsonapi.current_version(jsonapi.from_private(project(*versions))) == expected
    assert jsonapi.private_document(project(*versions), "https://h/pypi")["info"]["version"] == expected


def test_f2_partially_yanked_release_still_counts() -> None:
    """F2: a version with one yanked and one live file is not yanked."""
    demo = PrivateProject("demo", "Demo", (
        stored("demo-2.0-py3-none-any.whl", "2.0", yanked="bad wheel"),
        stored("demo-2.0.tar.gz", "2.0"),
        stored("demo-1.0.tar.gz", "1.0"),
    ))
    assert jsonapi.current_version(jsonapi.from_private(demo)) == "2.0"
    info = jsonapi.private_document(demo, "https://h/pypi")["info"]
    assert (info["version"], info["yanked"], info["yanked_reason"]) == ("2.0", False, None)


def test_current_version_of_empty_project() -> None:
    assert jsonapi.current_version(jsonapi.from_private(PrivateProject("demo", "Demo"))) is None


def test_f1_json_api_shape() -> None:
    """F1/F3: info, last_serial, releases, urls, vulnerabilities."""
    data = jsonapi.private_document(project(("1.0", None), ("1.1", "bad")), "https://h/pypi")
    assert set(data) == {"info", "last_serial", "releases", "urls", "vulnerabilities"}
    info = data["info"]
    assert {"name", "version", "summary", "description", "description_content_type", "requires_python",
            "requires_dist", "project_urls", "yanked", "yanked_reason"} <= set(info)
    assert info["name"] == "Demo"
    assert info["version"] == "1.0"
    assert info["summary"] == "summary 1.0"
    assert info["requires_dist"] == ["a>=1"]
    assert info["requires_python"] == ">=3.9"
    assert info["project_urls"] == {"Homepage": "https://example.invalid/"}
    assert info["yanked"] is False and info["yanked_reason"] is None
    assert info["release_url"] == "https://h/pypi/demo/1.0/"
    assert data["last_serial"] == 7
    assert data["vulnerabilities"] == []  # F3: none known for private projects
    assert set(data["releases"]) == {"1.0", "1.1"}
    json.dumps(data)  # serialisable as it is


def test_f1_file_shape() -> None:
    """F1: a file has digests, packagetype, python_version, size, upload times, yank state."""
    data = jsonapi.private_document(project(("1.0", None), ("1.1", "bad")), "https://h/pypi")
    [file] = data["urls"]
    assert file["filename"] == "demo-1.0-py3-none-any.whl"
    assert file["url"] == "https://h/pypi/files/demo/demo-1.0-py3-none-any.whl"
    assert file["digests"] == {"md5": "bb" * 16, "sha256": "aa" * 32, "blake2b_256": "cc" * 32}
    assert (file["packagetype"], file["python_version"], file["size"]) == ("bdist_wheel", "py3", 10)
    assert file["upload_time"] == "2026-11-24T10:20:30"
    assert file["upload_time_iso_8601"] == "2026-11-24T10:20:30.123456Z"
    assert (file["yanked"], file["yanked_reason"]) == (False, None)
    assert data["releases"]["1.0"] == [file]
    [yanked] = data["releases"]["1.1"]
    assert (yanked["yanked"], yanked["yanked_reason"]) == (True, "bad")


def test_f1_version_document_has_no_releases() -> None:
    """F1: /pypi/<project>/<version>/json is about that version and has no 'releases'."""
    data = jsonapi.private_document(project(("1.0", None), ("1.1", "bad")), "https://h/pypi", "1.1")
    assert "releases" not in data
    assert data["info"]["version"] == "1.1"
    assert data["info"]["summary"] == "summary 1.1"
    assert data["info"]["yanked"] is True and data["info"]["yanked_reason"] == "bad"
    assert [f["filename"] for f in data["urls"]] == ["demo-1.1-py3-none-any.whl"]
    assert data["vulnerabilities"] == []


def test_f1_version_document_accepts_an_equal_pep440_spelling() -> None:
    """A3/F1: /pypi/demo/1.0.0/json describes the release stored as '1.0', with its files."""
    data = jsonapi.private_document(project(("1.0", None), ("1.1", None)), "https://h/pypi", "1.0.0")
    assert data["info"]["version"] == "1.0"
    assert [f["filename"] for f in data["urls"]] == ["demo-1.0-py3-none-any.whl"]
    assert data["info"]["release_url"] == "https://h/pypi/demo/1.0/"


# Every key of PyPI's info (warehouse legacy/api/json.py), none more: clients index into them.
PYPI_INFO_KEYS = {
    "name", "version", "summary", "description_content_type", "description", "keywords", "license",
    "license_expression", "license_files", "classifiers", "author", "author_email", "maintainer",
    "maintainer_email", "requires_python", "platform", "downloads", "package_url", "project_url",
    "project_urls", "release_url", "requires_dist", "provides_extra", "docs_url", "bugtrack_url", "home_page",
    "download_url", "yanked", "yanked_reason", "dynamic",
}


def test_f1_info_has_exactly_pypis_keys_with_none_for_empty_lists() -> None:
    """F1: the keys PyPI gives, dynamic/license_files/provides_extra/project_urls None when empty."""
    demo = PrivateProject("demo", "Demo", (stored("demo-1.0-py3-none-any.whl", "1.0"),), (ReleaseInfo("1.0"),))
    info = jsonapi.private_document(demo, "https://h/pypi")["info"]
    assert set(info) == PYPI_INFO_KEYS
    for key in ("dynamic", "license_files", "provides_extra", "project_urls", "requires_dist", "platform",
                "license_expression", "keywords"):
        assert info[key] is None, key
    assert info["classifiers"] == []


def test_f1_info_new_metadata_fields() -> None:
    """F1 (issue 11 A2): dynamic, license_expression, license_files, provides_extra, project_urls."""
    release = ReleaseInfo(
        "1.0", author="Jürgen", summary="Café", license_expression="MIT OR Apache-2.0",
        license_files=("LICENSE", "NOTICE"), provides_extra=("fancy-ui", "test"), dynamic=("Requires-Dist",),
        project_urls=(("Dokumentation für Nutzer", "https://d.invalid"), ("Source", "https://s.invalid")),
        platform=("linux", "win32"), keywords="café, naïve",
    )
    demo = PrivateProject("demo", "Demo", (stored("demo-1.0-py3-none-any.whl", "1.0"),), (release,))
    info = jsonapi.private_document(demo, "https://h/pypi")["info"]
    assert set(info) == PYPI_INFO_KEYS
    assert (info["author"], info["summary"], info["keywords"]) == ("Jürgen", "Café", "café, naïve")
    assert info["license_expression"] == "MIT OR Apache-2.0"
    assert info["license_files"] == ["LICENSE", "NOTICE"]
    assert info["provides_extra"] == ["fancy-ui", "test"]
    assert info["dynamic"] == ["Requires-Dist"]
    assert info["project_urls"] == {"Dokumentation für Nutzer": "https://d.invalid", "Source": "https://s.invalid"}
    assert info["platform"] == "linux", "PyPI shows the first Platform"


# --- Upstream projects --------------------------------------------------------------------------------


def listed(filename: str, yanked: str | None = None, **extra: Any) -> IndexFile:
    return IndexFile(filename, f"../../files/demo/{filename}", {"sha256": "ab" * 32, "md5": "cd" * 16},
                     yanked_reason=yanked, **extra)


UPSTREAM = IndexPage("demo", (
    listed("demo-1.0-py3-none-any.whl", size=10, upload_time=WHEN, requires_python=">=3.8"),
    listed("demo-1.0.tar.gz", size=20),
    listed("Demo-1.0.0-cp312-cp312-manylinux_2_17_x86_64.whl"),  # same release, another spelling
    listed("demo-2.0b1.zip"),
    listed("demo-1.5-py3-none-any.whl", yanked="broken"),
    listed("README.txt"),  # no version: not in any release
), ("1.0", "1.5", "2.0b1", "3.0"), last_serial=99)


def test_from_upstream_groups_files_into_pep440_releases() -> None:
    api = jsonapi.from_upstream(UPSTREAM)
    assert list(api.releases) == ["1.0", "1.5", "2.0b1", "3.0"]  # every listed version, files or not
    assert [f.filename for f in api.releases["1.0"]] == [
        "demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz", "Demo-1.0.0-cp312-cp312-manylinux_2_17_x86_64.whl"]
    assert api.releases["3.0"] == []
    assert [(f.packagetype, f.python_version) for f in api.releases["1.0"]] == [
        ("bdist_wheel", "py3"), ("sdist", "source"), ("bdist_wheel", "cp312")]
    assert api.serial == 99


def test_f2_upstream_current_version_skips_yanked_prereleases_and_empty_releases() -> None:
    api = jsonapi.from_upstream(UPSTREAM)
    assert jsonapi.current_version(api) == "1.0"


def test_f1_upstream_document_with_info_from_metadata() -> None:
    api = jsonapi.from_upstream(UPSTREAM)
    info = ReleaseInfo("1.0", summary="Grüße", requires_dist=("dep>=2",))
    data = jsonapi.document(api, "1.0", info, "https://h/pypi", with_releases=True)
    assert (data["info"]["summary"], data["info"]["requires_dist"], data["last_serial"]) == ("Grüße", ["dep>=2"], 99)
    first = data["urls"][0]
    assert first["url"] == "https://h/pypi/files/demo/demo-1.0-py3-none-any.whl"
    assert first["digests"] == {"md5": "cd" * 16, "sha256": "ab" * 32, "blake2b_256": None}
    assert (first["size"], first["upload_time"], first["upload_time_iso_8601"]) == (
        10, "2026-11-24T10:20:30", "2026-11-24T10:20:30.123456Z")
    assert data["releases"]["1.0"][1]["upload_time"] is None
    assert data["releases"]["1.5"][0]["yanked_reason"] == "broken"


def test_f1_upstream_document_without_metadata_says_what_the_listing_says() -> None:
    api = jsonapi.from_upstream(UPSTREAM)
    data = jsonapi.document(api, "1.0", None, "https://h/pypi", with_releases=False)
    assert (data["info"]["version"], data["info"]["requires_python"], data["info"]["summary"]) == ("1.0", ">=3.8", "")
    assert "releases" not in data


def test_metadata_source_is_a_wheel_whose_metadata_is_offered() -> None:
    api = jsonapi.from_upstream(UPSTREAM)
    offered = ["demo-1.0-py3-none-any.whl", "Demo-1.0.0-cp312-cp312-manylinux_2_17_x86_64.whl"]
    assert jsonapi.metadata_source(api, "1.0", offered) == "Demo-1.0.0-cp312-cp312-manylinux_2_17_x86_64.whl"
    assert jsonapi.metadata_source(api, "2.0b1", offered) is None
