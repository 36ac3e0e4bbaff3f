"""Core metadata out of wheels and sdists (STANDARDS E6, PEP 658), and what the JSON API reads from it."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from proxy.distmeta import check_metadata_identity, extract_metadata, release_info
from proxy.errors import UploadRejected
from proxy.names import SDIST, WHEEL
from tests.builders import Dist

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


def test_release_info_fields() -> None:
    """F1: summary, description (the body), project URLs, requires-dist, requires-python."""
    info = release_info(DIST.metadata(), "1.0.0")
    assert info.version == "1.0.0"
    assert info.summary == "A test package"
    assert info.description == "# My.Pkg\n\nLong description.\n\nSecond paragraph."
    assert info.description_content_type == "text/markdown"
    assert info.requires_python == ">=3.9"
    assert info.requires_dist == ("requests>=2", "rich; extra == 'ui'")
    assert info.project_urls == (("Homepage", "https://example.invalid/home"),)


def test_release_info_full_metadata() -> None:
    raw = (
        b"Metadata-Version: 2.4\n"
        b"Name: full\n"
        b"Version: 3.0\n"
        b"Summary:   padded summary  \n"
        b"Author: Ada\n"
        b"Author-email: ada@example.invalid\n"
        b"License-Expression: MIT\n"
        b"Keywords: a,b\n"
        b"Home-page: https://home.invalid\n"
        b"Classifier: Programming Language :: Python :: 3\n"
        b"Classifier: License :: OSI Approved :: MIT License\n"
        b"Provides-Extra: ui\n"
        b"Project-URL: Source, https://src.invalid/x,y\n"
        b"Project-URL: Docs , https://docs.invalid\n"
        b"Platform: any\n"
        b"\n"
        b"Body\n"
    )
    info = release_info(raw, "3.0")
    assert info.summary == "padded summary"
    assert (info.author, info.author_email) == ("Ada", "ada@example.invalid")
    assert (info.license_expression, info.keywords, info.home_page) == ("MIT", "a,b", "https://home.invalid")
    assert info.classifiers == ("Programming Language :: Python :: 3", "License :: OSI Approved :: MIT License")
    assert info.provides_extra == ("ui",)
    # Only the first comma separates label and URL.
    assert info.project_urls == (("Source", "https://src.invalid/x,y"), ("Docs", "https://docs.invalid"))
    assert info.platform == ("any",)
    assert info.description == "Body"
    assert info.requires_python is None and info.requires_dist == ()


def test_release_info_metadata_1_x_description_header_and_unknown() -> None:
    """Older metadata: Description as a header; 'UNKNOWN' (old setuptools) means absent."""
    raw = b"Metadata-Version: 1.1\nName: old\nVersion: 0.1\nSummary: UNKNOWN\nLicense: UNKNOWN\nDescription: Short text\n"
    info = release_info(raw, "0.1")
    assert info.description == "Short text"
    assert info.summary == ""
    assert info.license is None


# --- E6/A4: the archive must describe what it is uploaded as ----------------------------------------


@pytest.mark.parametrize(("project", "version"), [
    ("my-pkg", "1.0.0"),
    ("my-pkg", "1.0"),  # A3: PEP 440 equal
    ("my-pkg", "1.0.0.0"),
])
def test_e6_metadata_identity_accepted(project: str, version: str) -> None:
    check_metadata_identity(DIST.metadata(), project, version)


@pytest.mark.parametrize(("project", "version", "needle"), [
    ("other", "1.0.0", "names project 'My.Pkg'"),
    ("my-pkg", "2.0", "has version '1.0.0'"),
    ("my-pkg", "1.0.0rc1", "has version"),
    ("my-pkg", "not-a-version", "has version"),
])
def test_e6_metadata_identity_mismatch_rejected(project: str, version: str, needle: str) -> None:
    """E6: metadata naming another project or version than the form is refused."""
    with pytest.raises(UploadRejected, match=needle):
        check_metadata_identity(DIST.metadata(), project, version)


@pytest.mark.parametrize("raw", [
    b"Metadata-Version: 2.1\nVersion: 1.0\n",  # no Name
    b"Metadata-Version: 2.1\nName: my-pkg\n",  # no Version
    b"Metadata-Version: 2.1\nName: my-pkg\nVersion: banana\n",
    b"",
])
def test_e6_metadata_without_valid_identity_rejected(raw: bytes) -> None:
    with pytest.raises(UploadRejected, match="Invalid distribution"):
        check_metadata_identity(raw, "my-pkg", "1.0")
