"""Names, versions and filenames (STANDARDS A1-A4, D3)."""

from __future__ import annotations

import random

import pytest
from packaging.version import Version

from proxy.core.errors import InvalidName
from proxy.core.models import version_key
from proxy.core.names import (
    SDIST,
    WHEEL,
    check_safe_filename,
    content_type_for,
    guess_packagetype,
    is_valid_project_name,
    normalize,
    parse_dist_filename,
    parse_version,
    validate_project_name,
)


@pytest.mark.parametrize(("name", "expected"), [
    ("Foo.Bar_baz", "foo-bar-baz"),
    ("foo--bar", "foo-bar"),
    ("foo-_.-bar", "foo-bar"),
    ("FOO", "foo"),
    ("Django", "django"),
    ("zope.interface", "zope-interface"),
    ("requests", "requests"),
    ("a1_B2", "a1-b2"),
])
def test_a1_pep503_normalisation(name: str, expected: str) -> None:
    """A1 (PEP 503): runs of -_. become one '-', lower case."""
    assert normalize(name) == expected


def test_a1_normalisation_is_idempotent() -> None:
    """A1: a normalised name normalises to itself."""
    assert normalize(normalize("Foo.Bar_baz")) == "foo-bar-baz"


@pytest.mark.parametrize(("name", "expected"), [
    ("a", "a"),
    ("A1", "a1"),
    ("foo.bar", "foo-bar"),
    ("Foo_Bar-baz", "foo-bar-baz"),
    ("1password", "1password"),
    ("x" * 100, "x" * 100),
])
def test_a2_valid_names_return_the_normalised_form(name: str, expected: str) -> None:
    """A2 (core metadata Name): valid names pass and come back normalised."""
    assert validate_project_name(name) == expected


@pytest.mark.parametrize("name", [
    "-foo", "foo-", "fo/o", "..", ".", "", "foo bar", "foé", ".foo", "foo_", "foo.",
    "foo\n", "\nfoo", "foo\x00", "fo\\o", "foo!", "_",
    # Non-ASCII letters that case-fold to ASCII ones under re.IGNORECASE (long s, Kelvin sign).
    "\u017fetuptools", "too\u212a", "\u212a", "foo\u2010bar",
])
def test_a2_invalid_names_rejected(name: str) -> None:
    """A2: names that must start and end with a letter or digit, ASCII only, are refused."""
    with pytest.raises(InvalidName, match="Invalid project name"):
        validate_project_name(name)
    assert not is_valid_project_name(name)


@pytest.mark.parametrize(("lower", "higher"), [
    ("1.9", "1.10"),
    ("1.0rc1", "1.0"),
    ("1.0", "1.0.post1"),
    ("1.0.dev1", "1.0a1"),
    ("1.0a1", "1.0b1"),
    ("1.0b2", "1.0rc1"),
    ("1.0.post1", "1.0.1"),
    ("2.0", "10.0"),
    ("1!0.1", "1!0.2"),
    ("99", "1!0.1"),
    ("not-a-version", "0.0.1"),
])
def test_a3_pep440_ordering(lower: str, higher: str) -> None:
    """A3 (PEP 440): order by version, never by string (1.10 > 1.9, 1.0rc1 < 1.0 < 1.0.post1)."""
    assert version_key(lower) < version_key(higher)
    assert version_key(higher) > version_key(lower)


def test_a3_sorting_a_shuffled_list() -> None:
    """A3: sorting with version_key gives PEP 440 order for a whole list."""
    ordered = ["0.9", "1.0.dev1", "1.0a1", "1.0rc1", "1.0", "1.0.post1", "1.1", "1.9", "1.10", "2.0"]
    shuffled = ordered[:]
    random.Random(4).shuffle(shuffled)
    assert sorted(shuffled, key=version_key) == ordered


@pytest.mark.parametrize(("a", "b"), [("1.0", "1.0.0"), ("1.0", "1.0.0.0"), ("1.0RC1", "1.0rc1"), ("v1.0", "1.0")])
def test_a3_equal_spellings(a: str, b: str) -> None:
    """A3: PEP 440 equal spellings sort as one version."""
    assert version_key(a) == version_key(b)


@pytest.mark.parametrize(("text", "expected"), [
    ("1.0", Version("1.0")), ("1.0rc1", Version("1.0rc1")), ("2024.1.post3", Version("2024.1.post3")),
])
def test_a3_parse_version(text: str, expected: Version) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize("text", ["not-a-version", "1.0-foo-bar", "", "1..0", "latest", "1.0/../x"])
def test_a3_invalid_version_is_invalid_name(text: str) -> None:
    """A3: an invalid version is refused (a 400 on upload)."""
    with pytest.raises(InvalidName, match="not a PEP 440 version"):
        parse_version(text)


@pytest.mark.parametrize(("filename", "project", "version", "packagetype", "tag"), [
    ("foo_bar-1.0-py3-none-any.whl", "foo-bar", "1.0", WHEEL, "py3"),
    ("Foo.Bar-2.0.post1-1-cp311-cp311-manylinux_2_17_x86_64.whl", "foo-bar", "2.0.post1", WHEEL, "cp311"),
    ("foo_bar-1.0-1build2-py3-none-any.whl", "foo-bar", "1.0", WHEEL, "py3"),
    ("foo_bar-1.0-py2.py3-none-any.whl", "foo-bar", "1.0", WHEEL, "py2.py3"),
    ("numpy-2.1.0-cp312-cp312-win_amd64.whl", "numpy", "2.1.0", WHEEL, "cp312"),
    ("foo_bar-1.0.tar.gz", "foo-bar", "1.0", SDIST, "source"),
    ("Foo_Bar-1.0rc1.tar.gz", "foo-bar", "1.0rc1", SDIST, "source"),
    ("zope_interface-6.0.tar.gz", "zope-interface", "6.0", SDIST, "source"),
])
def test_a4_filenames(filename: str, project: str, version: str, packagetype: str, tag: str) -> None:
    """A4: wheel (with or without build tag) and PEP 625 sdist names parse, the name normalised."""
    parsed = parse_dist_filename(filename)
    assert parsed.project == project
    assert parsed.version == Version(version)
    assert (parsed.packagetype, parsed.python_tag) == (packagetype, tag)


def test_a4_wheel_build_tag_does_not_leak_into_the_version() -> None:
    """A4: '-1-' in a wheel name is the build tag, not part of the version."""
    assert str(parse_dist_filename("demo-1.0-1-py3-none-any.whl").version) == "1.0"


@pytest.mark.parametrize("filename", [
    "foo-1.0.zip",  # A4: legacy sdists are listed, never accepted for upload
    "foo-1.0.tar.bz2",
    "foo-1.0.tgz",
    "foo-1.0.egg",
    "foo-1.0-py2.7.egg",
    "foo-1.0-py3-none.whl",  # a tag missing
    "foo.whl",
    "foo-bar.tar.gz",  # "bar" is no version
    "foo-1.0-py3-none-any.whl.metadata",
    "../foo-1.0.tar.gz",
    "foo-1.0.exe",
])
def test_a4_not_accepted_on_upload(filename: str) -> None:
    with pytest.raises(InvalidName):
        parse_dist_filename(filename)


@pytest.mark.parametrize(("filename", "kind"), [
    ("foo-1.0.zip", SDIST),
    ("foo-bar-1.0.zip", SDIST),  # hyphenated legacy sdist
    ("foo-1.0.tar.bz2", SDIST),
    ("foo-1.0.tgz", SDIST),
    ("foo-1.0.tar.gz", SDIST),
    ("foo-1.0-py3-none-any.whl", WHEEL),
    ("foo-1.0-py2.7.egg", "bdist_egg"),
    ("foo-1.0.win32.exe", "bdist_wininst"),
    ("foo-1.0.rpm", "unknown"),
])
def test_a4_legacy_files_are_still_classified(filename: str, kind: str) -> None:
    """A4: upstream lists old .zip sdists and eggs; they must be recognised and served."""
    assert guess_packagetype(filename) == kind


@pytest.mark.parametrize("filename", [
    "foo-1.0-py3-none-any.whl", "foo-1.0.tar.gz", "foo-1.0-py3-none-any.whl.metadata", "a..b", "x" * 255,
])
def test_safe_filenames_pass_unchanged(filename: str) -> None:
    assert check_safe_filename(filename) == filename


@pytest.mark.parametrize("filename", [
    "../x", "../x.whl", "a/../../b.whl", "/etc/passwd", "a/b.whl", "..\\x.whl", "a\\b.whl",
    "x\x00.whl", "x\n.whl", "x\r.whl", "x\t.whl", "x\x1b.whl", "x\x7f.whl",
    ".hidden.whl", ".tmp-upload", "..", ".", "", "x" * 256,
])
def test_unsafe_filenames_rejected(filename: str) -> None:
    """Names that become path components: no separators, control characters, or leading dots."""
    with pytest.raises(InvalidName, match="Invalid filename"):
        check_safe_filename(filename)


@pytest.mark.parametrize(("filename", "content_type"), [
    ("a-1.0-py3-none-any.whl", "application/zip"),
    ("a-1.0.zip", "application/zip"),
    ("a-1.0-py2.7.egg", "application/zip"),
    ("a-1.0.tar.gz", "application/gzip"),
    ("a-1.0.tgz", "application/gzip"),
    ("a-1.0-py3-none-any.whl.metadata", "text/plain; charset=utf-8"),
    ("a-1.0.tar.gz.metadata", "text/plain; charset=utf-8"),
    ("a-1.0.tar.bz2", "application/octet-stream"),
    ("a-1.0.exe", "application/octet-stream"),
])
def test_d3_content_types(filename: str, content_type: str) -> None:
    """D3: .whl/.zip application/zip, .tar.gz application/gzip, .metadata text/plain."""
    assert content_type_for(filename) == content_type
