"""Names, versions and filenames (STANDARDS A1-A4)."""

from __future__ import annotations

import pytest

from proxy.errors import InvalidName
from proxy.models import version_key
from proxy.names import (
    SDIST,
    WHEEL,
    check_safe_filename,
    content_type_for,
    guess_packagetype,
    normalize,
    parse_dist_filename,
    validate_project_name,
)


@pytest.mark.parametrize(("name", "expected"), [
    ("Foo.Bar_baz", "foo-bar-baz"),
    ("foo--bar", "foo-bar"),
    ("FOO", "foo"),
    ("a_.-b", "a-b"),
    ("requests", "requests"),
])
def test_a1_pep503_normalisation(name: str, expected: str) -> None:
    assert normalize(name) == expected


@pytest.mark.parametrize("name", ["a", "A1", "foo.bar", "Foo_Bar-baz", "x" * 100])
def test_a2_valid_names(name: str) -> None:
    assert validate_project_name(name) == normalize(name)


@pytest.mark.parametrize("name", ["-foo", "foo-", "fo/o", "..", "", "foo bar", "foé", ".foo", "foo_"])
def test_a2_invalid_names_rejected(name: str) -> None:
    with pytest.raises(InvalidName):
        validate_project_name(name)


@pytest.mark.parametrize(("lower", "higher"), [
    ("1.9", "1.10"),
    ("1.0rc1", "1.0"),
    ("1.0", "1.0.post1"),
    ("1.0.dev1", "1.0a1"),
    ("not-a-version", "0.0.1"),
])
def test_a3_pep440_ordering(lower: str, higher: str) -> None:
    assert version_key(lower) < version_key(higher)


def test_a3_equal_spellings() -> None:
    assert version_key("1.0") == version_key("1.0.0")


@pytest.mark.parametrize(("filename", "project", "version", "packagetype", "tag"), [
    ("foo_bar-1.0-py3-none-any.whl", "foo-bar", "1.0", WHEEL, "py3"),
    ("Foo.Bar-2.0.post1-1-cp311-cp311-manylinux_2_17_x86_64.whl", "foo-bar", "2.0.post1", WHEEL, "cp311"),
    ("foo_bar-1.0-py2.py3-none-any.whl", "foo-bar", "1.0", WHEEL, "py2.py3"),
    ("foo_bar-1.0.tar.gz", "foo-bar", "1.0", SDIST, "source"),
    ("foo_bar-1.0rc1.tar.gz", "foo-bar", "1.0rc1", SDIST, "source"),
])
def test_a4_filenames(filename: str, project: str, version: str, packagetype: str, tag: str) -> None:
    parsed = parse_dist_filename(filename)
    assert (parsed.project, str(parsed.version), parsed.packagetype, parsed.python_tag) == (project, version, packagetype, tag)


@pytest.mark.parametrize("filename", [
    "foo-1.0.zip", "foo-1.0.tar.bz2", "foo-1.0.egg", "foo-1.0-py3-none.whl", "foo.whl", "foo-bar.tar.gz",
])
def test_a4_not_accepted_on_upload(filename: str) -> None:
    with pytest.raises(InvalidName):
        parse_dist_filename(filename)


@pytest.mark.parametrize(("filename", "kind"), [
    ("foo-1.0.zip", SDIST), ("foo-1.0.tar.bz2", SDIST), ("foo-1.0.tar.gz", SDIST),
    ("foo-1.0-py3-none-any.whl", WHEEL), ("foo-1.0-py2.7.egg", "bdist_egg"), ("foo.exe", "bdist_wininst"),
])
def test_a4_legacy_files_are_still_classified(filename: str, kind: str) -> None:
    """Upstream lists old .zip sdists and eggs: they must be recognisable (A4)."""
    assert guess_packagetype(filename) == kind


@pytest.mark.parametrize("filename", [
    "../x.whl", "a/../../b.whl", "/etc/passwd", "..\\x.whl", "a\\b.whl", "x\x00.whl", "x\n.whl",
    ".hidden.whl", "..", ".", "", "x" * 256,
])
def test_unsafe_filenames_rejected(filename: str) -> None:
    with pytest.raises(InvalidName):
        check_safe_filename(filename)


@pytest.mark.parametrize(("filename", "content_type"), [
    ("a-1.0-py3-none-any.whl", "application/zip"),
    ("a-1.0.zip", "application/zip"),
    ("a-1.0.tar.gz", "application/gzip"),
    ("a-1.0-py3-none-any.whl.metadata", "text/plain; charset=utf-8"),
    ("a-1.0.exe", "application/octet-stream"),
])
def test_d3_content_types(filename: str, content_type: str) -> None:
    assert content_type_for(filename) == content_type
