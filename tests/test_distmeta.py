"""Core metadata out of wheels and sdists (STANDARDS E6, PEP 658)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from proxy.distmeta import check_metadata_identity, extract_metadata, release_info
from proxy.errors import UploadRejected
from proxy.names import SDIST, WHEEL
from tests.builders import Dist

DIST = Dist("My.Pkg", "1.0.0", requires_python=">=3.9", requires_dist=["requests>=2", "rich; extra == 'ui'"])


def test_e6_wheel_metadata_is_byte_identical(tmp_path: Path) -> None:
    [wheel] = DIST.write(tmp_path, sdist=False)
    assert extract_metadata(wheel, WHEEL) == DIST.metadata()


def test_e6_sdist_pkg_info_is_byte_identical(tmp_path: Path) -> None:
    [sdist] = DIST.write(tmp_path, wheel=False)
    assert extract_metadata(sdist, SDIST) == DIST.metadata()


def _zip(tmp_path: Path, files: dict[str, bytes]) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    path = tmp_path / "x.whl"
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize(("packagetype", "content", "needle"), [
    (WHEEL, b"not a zip", "not a valid zip"),
    (SDIST, b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "not a valid .tar.gz"),
    (SDIST, b"plain text", "not a valid .tar.gz"),
])
def test_invalid_archives(tmp_path: Path, packagetype: str, content: bytes, needle: str) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(UploadRejected, match=needle):
        extract_metadata(path, packagetype)


def test_wheel_with_two_dist_info_dirs(tmp_path: Path) -> None:
    path = _zip(tmp_path, {"a-1.dist-info/METADATA": b"Name: a", "b-1.dist-info/METADATA": b"Name: b"})
    with pytest.raises(UploadRejected, match="exactly one"):
        extract_metadata(path, WHEEL)


def test_wheel_without_metadata(tmp_path: Path) -> None:
    with pytest.raises(UploadRejected, match="exactly one"):
        extract_metadata(_zip(tmp_path, {"a/__init__.py": b""}), WHEEL)


def test_sdist_without_pkg_info(tmp_path: Path) -> None:
    import tarfile

    path = tmp_path / "x.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("x-1.0/setup.py")
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(UploadRejected, match="no top-level PKG-INFO"):
        extract_metadata(path, SDIST)


def test_release_info_fields() -> None:
    info = release_info(DIST.metadata(), "1.0.0")
    assert info.summary == DIST.summary
    assert info.description == DIST.description.rstrip("\n")
    assert info.description_content_type == "text/markdown"
    assert info.requires_python == ">=3.9"
    assert info.requires_dist == ("requests>=2", "rich; extra == 'ui'")
    assert info.project_urls == (("Homepage", "https://example.invalid/home"),)


@pytest.mark.parametrize(("project", "version", "ok"), [
    ("my-pkg", "1.0.0", True),
    ("my-pkg", "1.0", True),
    ("other", "1.0.0", False),
    ("my-pkg", "2.0", False),
])
def test_e6_metadata_must_match_the_form(project: str, version: str, ok: bool) -> None:
    if ok:
        check_metadata_identity(DIST.metadata(), project, version)
    else:
        with pytest.raises(UploadRejected):
            check_metadata_identity(DIST.metadata(), project, version)
