"""Core metadata out of wheels and sdists (STANDARDS E6, PEP 658), and what the JSON API reads from it."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from proxy.core.errors import UploadRejected
from proxy.core.metadata import check_metadata_identity, read_core_metadata, release_info
from proxy.core.models import ReleaseInfo
from proxy.core.names import SDIST, WHEEL
from proxy.storage.distributions import extract_metadata
from tests.builders import Dist, build_with_poetry

DIST = Dist("My.Pkg", "1.0.0", requires_python=">=3.9",
            requires_dist=["requests>=2", "rich; extra == 'ui'"],
            description="# My.Pkg\n\nLong description.\n\nSecond paragraph.\n")
# Incompressible content, so that a cut in the middle of the archive falls after PKG-INFO.
BIG = Dist("big", "2.0", module_source="DATA = " + repr(os.urandom(30_000).hex()) + "\n")


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def make_tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed, \
            tarfile.open(fileobj=compressed, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# --- E6: the archive's own bytes ------------------------------------------------------------------


def test_e6_wheel_metadata_is_byte_identical(tmp_path: Path) -> None:
    """E6 (PEP 658): the wheel's *.dist-info/METADATA, byte for byte."""
    [wheel] = DIST.write(tmp_path, sdist=False)
    assert extract_metadata(wheel, WHEEL) == DIST.metadata()


def test_e6_sdist_pkg_info_is_byte_identical(tmp_path: Path) -> None:
    """E6 (PEP 658): the sdist's top-level PKG-INFO, byte for byte."""
    [sdist] = DIST.write(tmp_path, wheel=False)
    assert extract_metadata(sdist, SDIST) == DIST.metadata()


def test_e6_large_sdist_is_read_whole_and_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, BIG.sdist_filename, BIG.sdist())
    assert extract_metadata(path, SDIST) == BIG.metadata()


def test_e6_wheel_metadata_not_rebuilt_from_other_files(tmp_path: Path) -> None:
    """E6: a nested METADATA (vendored package) is not the wheel's metadata."""
    raw = b"Metadata-Version: 2.1\nName: a\nVersion: 1\n"
    path = write(tmp_path, "a-1-py3-none-any.whl", make_zip({
        "a/_vendor/b-2.dist-info/METADATA": b"Name: b\n",
        "a-1.dist-info/METADATA": raw,
    }))
    assert extract_metadata(path, WHEEL) == raw


def test_e6_sdist_nested_pkg_info_is_not_top_level(tmp_path: Path) -> None:
    """E6: PKG-INFO must be directly under the sdist's root directory; egg-info copies do not count."""
    path = write(tmp_path, "x-1.0.tar.gz", make_tar_gz({"x-1.0/src/x.egg-info/PKG-INFO": b"Name: x\n"}))
    with pytest.raises(UploadRejected, match="no top-level PKG-INFO"):
        extract_metadata(path, SDIST)


# --- Invalid archives: E3 "not a valid wheel/sdist" ------------------------------------------------


def test_wheel_with_two_dist_info_dirs(tmp_path: Path) -> None:
    path = write(tmp_path, "x.whl", make_zip({
        "a-1.dist-info/METADATA": b"Name: a\n", "b-1.dist-info/METADATA": b"Name: b\n",
    }))
    with pytest.raises(UploadRejected, match="exactly one"):
        extract_metadata(path, WHEEL)


def test_wheel_without_metadata(tmp_path: Path) -> None:
    path = write(tmp_path, "x.whl", make_zip({"a/__init__.py": b""}))
    with pytest.raises(UploadRejected, match="exactly one"):
        extract_metadata(path, WHEEL)


@pytest.mark.parametrize(("packagetype", "content", "needle"), [
    pytest.param(WHEEL, b"not a zip", "Invalid wheel: not a valid zip", id="wheel-not-a-zip"),
    pytest.param(WHEEL, b"", "Invalid wheel: not a valid zip", id="wheel-empty"),
    pytest.param(WHEEL, DIST.sdist(), "Invalid wheel: not a valid zip", id="wheel-is-a-tar-gz"),
    pytest.param(WHEEL, DIST.wheel()[:-30], "Invalid wheel: not a valid zip", id="wheel-truncated"),
    pytest.param(SDIST, b"plain text", "Invalid sdist: not a valid .tar.gz", id="sdist-not-gzip"),
    pytest.param(SDIST, b"", "Invalid sdist", id="sdist-empty"),
    pytest.param(SDIST, DIST.wheel(), "Invalid sdist: not a valid .tar.gz", id="sdist-is-a-zip"),
    pytest.param(SDIST, b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "Invalid sdist: not a valid .tar.gz", id="gzip-header-only"),
    pytest.param(SDIST, gzip.compress(b"not a tar archive" * 40), "Invalid sdist: not a valid .tar.gz", id="gzip-not-tar"),
    pytest.param(SDIST, BIG.sdist()[:200], "Invalid sdist: not a valid .tar.gz", id="sdist-truncated-early"),
    pytest.param(SDIST, BIG.sdist()[: len(BIG.sdist()) // 2], "Invalid sdist: not a valid .tar.gz",
                 id="sdist-truncated-after-pkg-info"),
    pytest.param(SDIST, BIG.sdist()[:-4], "Invalid sdist: not a valid .tar.gz", id="sdist-gzip-trailer-cut"),
])
def test_invalid_archives_rejected(tmp_path: Path, packagetype: str, content: bytes, needle: str) -> None:
    """E3: a file that is not a valid wheel or sdist is refused with a reason, never a crash."""
    path = write(tmp_path, "upload", content)
    with pytest.raises(UploadRejected, match=needle):
        extract_metadata(path, packagetype)


def test_sdist_with_corrupt_deflate_stream(tmp_path: Path) -> None:
    """A flipped byte after PKG-INFO: the gzip CRC or deflate data catch it."""
    data = bytearray(BIG.sdist())
    data[len(data) * 3 // 4] ^= 0xFF
    with pytest.raises(UploadRejected, match="Invalid sdist"):
        extract_metadata(write(tmp_path, "x.tar.gz", bytes(data)), SDIST)


def test_sdist_without_pkg_info(tmp_path: Path) -> None:
    path = write(tmp_path, "x-1.0.tar.gz", make_tar_gz({"x-1.0/setup.py": b"", "x-1.0/x/__init__.py": b""}))
    with pytest.raises(UploadRejected, match="no top-level PKG-INFO"):
        extract_metadata(path, SDIST)


def test_unknown_packagetype(tmp_path: Path) -> None:
    [wheel] = DIST.write(tmp_path, sdist=False)
    with pytest.raises(UploadRejected, match="Unknown type"):
        extract_metadata(wheel, "bdist_egg")


# --- release_info: what the JSON API shows ---------------------------------------------------------


def info_of(raw: bytes, version: str, packagetype: str = WHEEL) -> ReleaseInfo:
    return release_info(read_core_metadata(raw, packagetype), version)


def test_release_info_fields() -> None:
    """F1: summary, description (the body), project URLs, requires-dist, requires-python."""
    info = info_of(DIST.metadata(), "1.0.0")
    assert info.version == "1.0.0"
    assert info.summary == "A test package"
    assert info.description == "# My.Pkg\n\nLong description.\n\nSecond paragraph."
    assert info.description_content_type == "text/markdown"
    assert info.requires_python == ">=3.9"
    assert info.requires_dist == ("requests>=2", "rich; extra == 'ui'")
    assert info.project_urls == (("Homepage", "https://example.invalid/home"),)


def test_release_info_full_metadata() -> None:
    """F1: every field the JSON API shows, in the form PyPI gives it (keywords joined with ", ",
    provides_extra normalised, dynamic title-cased, the license expression canonical)."""
    raw = (
        b"Metadata-Version: 2.4\n"
        b"Name: full\n"
        b"Version: 3.0\n"
        b"Summary:   padded summary  \n"
        b"Author: Ada\n"
        b"Author-email: ada@example.invalid\n"
        b"License-Expression: mit OR apache-2.0\n"
        b"License-File: LICENSE\n"
        b"License-File: licenses/NOTICE.txt\n"
        b"Keywords: a,b\n"
        b"Home-page: https://home.invalid\n"
        b"Classifier: Programming Language :: Python :: 3\n"
        b"Classifier: License :: OSI Approved :: MIT License\n"
        b"Provides-Extra: UI_Extras\n"
        b"Dynamic: requires-dist\n"
        b"Project-URL: Source, https://src.invalid/x,y\n"
        b"Project-URL: Docs , https://docs.invalid\n"
        b"Platform: any\n"
        b"\n"
        b"Body\n"
    )
    info = info_of(raw, "3.0")
    assert info.summary == "padded summary"
    assert (info.author, info.author_email) == ("Ada", "ada@example.invalid")
    assert (info.license_expression, info.keywords, info.home_page) == ("MIT OR Apache-2.0", "a, b", "https://home.invalid")
    assert info.license_files == ("LICENSE", "licenses/NOTICE.txt")
    assert info.classifiers == ("Programming Language :: Python :: 3", "License :: OSI Approved :: MIT License")
    assert info.provides_extra == ("ui-extras",)
    assert info.dynamic == ("Requires-Dist",)
    # Only the first comma separates label and URL.
    assert info.project_urls == (("Source", "https://src.invalid/x,y"), ("Docs", "https://docs.invalid"))
    assert info.platform == ("any",)
    assert info.description == "Body"
    assert info.requires_python is None and info.requires_dist == ()


def test_release_info_metadata_1_x_description_header_and_unknown() -> None:
    """Older metadata: Description as a header; 'UNKNOWN' (old setuptools) means absent."""
    raw = (b"Metadata-Version: 1.1\nName: old\nVersion: 0.1\nSummary: UNKNOWN\nLicense: UNKNOWN\n"
           b"Description: Short text\n")
    info = info_of(raw, "0.1")
    assert info.description == "Short text"
    assert info.summary == ""
    assert info.license is None
    assert info_of(raw.replace(b"Short text", b"UNKNOWN"), "0.1").description == ""


@pytest.mark.parametrize(("header", "shown"), [
    ("a,b", "a, b"), ("a, b ,c", "a, b, c"), ("single", "single"), ("café,naïve", "café, naïve"), ("", None),
])
def test_f1_keywords_as_pypi_shows_them(header: str, shown: str | None) -> None:
    """F1: PyPI splits Keywords on commas and shows them joined with ", "; none is null."""
    raw = (BASE.format(mv="2.1") + f"Keywords: {header}\n").encode()
    assert info_of(raw, "1.0").keywords == shown


# --- H2: core metadata is UTF-8 text --------------------------------------------------------------

# Every text field a person writes, in several scripts (classifiers are ASCII by definition).
AUTHOR, SUMMARY, KEYWORDS = "Jürgen Müller-Øster", "Café crème: 東京 naïve façade", "café, naïve, данные"
LABEL, LICENSE = "Dokumentation für Nutzer", "Ça va © Jürgen"
BODY = "# Grüße\n\nZoë’s naïve café — 🐍 π ≈ 3.14\n\nÅngström"


def metadata_text(version: str) -> str:
    """A METADATA/PKG-INFO of ``version`` with non-ASCII in every text field that version has."""
    lines = [f"Metadata-Version: {version}", "Name: caf-pkg", "Version: 1.0", f"Summary: {SUMMARY}",
             f"Author: {AUTHOR}", f"Author-email: {AUTHOR} <j@example.invalid>", f"License: {LICENSE}",
             f"Keywords: {KEYWORDS}", "Classifier: Programming Language :: Python :: 3"]
    if version >= "1.2":
        lines += [f"Maintainer: {AUTHOR}", f"Project-URL: {LABEL}, https://example.invalid/d%C3%BCsseldorf"]
    if version.startswith("1."):  # the long description was a header before metadata 2.1
        return "\n".join([*lines, f"Description: {BODY.splitlines()[0]}"]) + "\n"
    return "\n".join([*lines, "Description-Content-Type: text/markdown"]) + "\n\n" + BODY + "\n"


@pytest.mark.parametrize("packagetype", [WHEEL, SDIST])
@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2", "2.1", "2.2", "2.3", "2.4"])
def test_h2_non_ascii_text_is_kept_exactly(packagetype: str, version: str) -> None:
    """H2: decoded as UTF-8, nothing replaced, in wheel METADATA and sdist PKG-INFO of every version."""
    info = info_of(metadata_text(version).encode(), "1.0", packagetype)
    assert (info.summary, info.author, info.license) == (SUMMARY, AUTHOR, LICENSE)
    assert info.author_email == f"{AUTHOR} <j@example.invalid>"
    assert info.keywords == KEYWORDS
    if version >= "1.2":
        assert info.maintainer == AUTHOR
        assert info.project_urls == ((LABEL, "https://example.invalid/d%C3%BCsseldorf"),)
    assert info.description == (BODY.splitlines()[0] if version.startswith("1.") else BODY)


@pytest.mark.parametrize(("packagetype", "source"), [(WHEEL, "METADATA"), (SDIST, "PKG-INFO")])
@pytest.mark.parametrize(("bad", "where"), [
    pytest.param("Jürgen".encode("latin-1"), "byte 0xfc at offset 52", id="latin-1"),
    pytest.param(b"J\xc3", "byte 0xc3 at offset 52", id="truncated-sequence"),
    pytest.param(b"\xff\xfe", "byte 0xff at offset 51", id="not-utf8-at-all"),
])
def test_h2_invalid_utf8_is_refused_naming_the_problem(packagetype: str, source: str, bad: bytes, where: str) -> None:
    """H2: metadata that is not UTF-8 is refused, not shown as replacement characters."""
    raw = b"Metadata-Version: 2.1\nName: x\nVersion: 1.0\nAuthor: " + bad + b"\n"  # "Author: " ends at 51
    with pytest.raises(UploadRejected, match=f"{source} is not valid UTF-8 \\({where}\\)"):
        read_core_metadata(raw, packagetype)


# --- H2: validated as PyPI does (warehouse forklift/metadata.py, packaging.metadata) ---------------

BASE = "Metadata-Version: {mv}\nName: x\nVersion: 1.0\n"


@pytest.mark.parametrize(("header", "field", "needle"), [
    pytest.param("Metadata-Version: 3.0", "Metadata-Version", "'3.0' is not supported", id="unknown-major-3"),
    pytest.param("Metadata-Version: 10.1", "Metadata-Version", "not supported", id="unknown-major-10"),
    pytest.param("Metadata-Version: 0.9", "Metadata-Version", "not supported", id="major-0"),
    pytest.param("Metadata-Version: two", "Metadata-Version", "not supported", id="not-a-number"),
    pytest.param("Dynamic: Name", "Dynamic", "'name' is not allowed as a dynamic field", id="dynamic-name"),
    pytest.param("Dynamic: version", "Dynamic", "'version' is not allowed", id="dynamic-version"),
    pytest.param("Dynamic: Metadata-Version", "Dynamic", "not allowed", id="dynamic-metadata-version"),
    pytest.param("Dynamic: Colour", "Dynamic", "not a valid dynamic field", id="dynamic-unknown-field"),
    pytest.param("License-Expression: MIT OR", "License-Expression", "invalid", id="license-expression-syntax"),
    pytest.param("License-Expression: Not-A-License", "License-Expression", "invalid", id="license-expression-unknown"),
    pytest.param("License-Expression: MIT and (", "License-Expression", "invalid", id="license-expression-paren"),
    pytest.param("License-File: ../LICENSE", "License-File", "parent directory", id="license-file-parent"),
    pytest.param("License-File: /etc/LICENSE", "License-File", "relative", id="license-file-absolute"),
    pytest.param("Requires-Dist: requests >>= 2", "Requires-Dist", "invalid", id="requires-dist"),
    pytest.param("Requires-Python: =>3.8", "Requires-Python", "invalid", id="requires-python"),
    pytest.param("Provides-Extra: -dev", "Provides-Extra", "invalid", id="provides-extra"),
    pytest.param("Description-Content-Type: text/html", "Description-Content-Type", "must be one of", id="content-type"),
    pytest.param("Summary: one\n two", "Summary", "single line", id="summary-two-lines"),
    pytest.param("Name: x", "Name", "repeated", id="name-twice"),
    pytest.param("Version: 2.0", "Version", "repeated", id="version-twice"),
    pytest.param("Project-URL: Docs, https://a.invalid\nProject-URL: Docs, https://b.invalid", "Project-URL",
                 "repeated", id="project-url-label-twice"),
])
def test_h2_invalid_field_is_refused_naming_it(header: str, field: str, needle: str) -> None:
    """H2/E3: each invalid field is a rejection whose reason names the field and the problem."""
    if header.startswith("Metadata-Version"):
        raw = (header + "\nName: x\nVersion: 1.0\n").encode()
    else:
        raw = (BASE.format(mv="2.4") + header + "\n").encode()
    with pytest.raises(UploadRejected) as error:
        read_core_metadata(raw, WHEEL)
    assert f"field {field!r} in METADATA" in error.value.reason
    assert needle in error.value.reason


@pytest.mark.parametrize(("raw", "field"), [
    pytest.param(b"Name: x\nVersion: 1.0\n", "'Metadata-Version'", id="no-metadata-version"),
    pytest.param(b"Metadata-Version: 2.1\nVersion: 1.0\n", "'Name'", id="no-name"),
    pytest.param(b"Metadata-Version: 2.1\nName: x\n", "'Version'", id="no-version"),
    pytest.param(b"Metadata-Version: 2.1\nName: -x-\nVersion: 1.0\n", "'Name'", id="invalid-name"),
    pytest.param(b"Metadata-Version: 2.1\nName: x\nVersion: banana\n", "'Version'", id="invalid-version"),
    pytest.param(b"", "'Metadata-Version'", id="empty"),
])
def test_h2_required_fields(raw: bytes, field: str) -> None:
    """Core metadata spec: Metadata-Version, Name and Version are required, and valid."""
    with pytest.raises(UploadRejected, match=field):
        read_core_metadata(raw, SDIST)


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2", "2.0", "2.1", "2.2", "2.3", "2.4", "2.5", "2.9"])
def test_h2_every_1_x_and_2_x_metadata_version_is_read(version: str) -> None:
    """Core metadata spec: a reader must fail on a newer major version but only warn on a newer
    minor one, so 2.9 is read; 2.0 is what old bdist_wheel wrote."""
    core = read_core_metadata(BASE.format(mv=version).encode(), WHEEL)
    assert (core.name, core.version) == ("x", "1.0")


def test_h2_dynamic_fields_other_than_identity_are_accepted() -> None:
    """PEP 643: any field but Name, Version and Metadata-Version may be dynamic (in an sdist)."""
    raw = (BASE.format(mv="2.2") + "Dynamic: Requires-Dist\nDynamic: summary\n").encode()
    assert info_of(raw, "1.0", SDIST).dynamic == ("Requires-Dist", "Summary")


def test_h2_unknown_fields_are_ignored() -> None:
    raw = (BASE.format(mv="2.1") + "X-Custom: anything\nX-Custom: twice\n").encode()
    assert info_of(raw, "1.0").summary == ""


def test_h2_license_file_in_metadata_2_1_from_older_setuptools_is_accepted() -> None:
    """setuptools 56 to 76 wrote License-File under Metadata-Version 2.1, before PEP 639 made it a
    2.4 field: such wheels are common, so a field newer than the declared version is not an error."""
    raw = (BASE.format(mv="2.1") + "License: MIT\nLicense-File: LICENSE\n").encode()
    info = info_of(raw, "1.0")
    assert (info.license, info.license_files) == ("MIT", ("LICENSE",))


def test_h2_wheel_built_by_a_real_backend(tmp_path: Path) -> None:
    """H2: a wheel and sdist built by poetry-core (python -m build, offline) read back exactly."""
    wheel, sdist = build_with_poetry(tmp_path)
    for path, packagetype in ((wheel, WHEEL), (sdist, SDIST)):
        info = info_of(extract_metadata(path, packagetype), "1.0.0", packagetype)
        assert (info.summary, info.author) == ("Café crème for Jürgen", "Jürgen Müller")
        assert info.keywords == "café, naïve"
        assert info.description == "# Café\n\nGrüße, naïve façade — 🐍"
        assert info.project_urls == (("Dokumentation für Nutzer", "https://example.invalid/docs"),)
        assert (info.license_expression, info.license_files) == ("MIT", ("LICENSE",))


# --- E6/A4: the archive must describe what it is uploaded as ----------------------------------------


@pytest.mark.parametrize(("project", "version"), [
    ("my-pkg", "1.0.0"),
    ("my-pkg", "1.0"),  # A3: PEP 440 equal
    ("my-pkg", "1.0.0.0"),
])
def test_e6_metadata_identity_accepted(project: str, version: str) -> None:
    check_metadata_identity(read_core_metadata(DIST.metadata(), WHEEL), project, version)


@pytest.mark.parametrize(("project", "version", "needle"), [
    ("other", "1.0.0", "names project 'My.Pkg'"),
    ("my-pkg", "2.0", "has version '1.0.0'"),
    ("my-pkg", "1.0.0rc1", "has version"),
])
def test_e6_metadata_identity_mismatch_rejected(project: str, version: str, needle: str) -> None:
    """E6: metadata naming another project or version than the form is refused."""
    with pytest.raises(UploadRejected, match=needle):
        check_metadata_identity(read_core_metadata(DIST.metadata(), WHEEL), project, version)
