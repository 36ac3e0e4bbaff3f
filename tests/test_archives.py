"""Reading an uploaded archive is bounded, whatever its headers claim (issue 12 M2), and member
paths an extraction could turn against its user are refused (issue 12 L11).

Each family is one parametrized table; the issue's own inputs are built by tests/archivekit.py
at their full size (cheaply: repeated gzip members). Memory is asserted by construction: the
reader is watched (through the standard library it calls) to stop at the limit and to keep no
more than one tar member.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.core.errors import UploadRejected
from proxy.core.names import SDIST, WHEEL
from proxy.storage import archives, wheelzip
from proxy.storage.distributions import extract_metadata
from tests import archivekit as kit
from tests.archivekit import MIB, Entry, RawZip, sdist, tar_file, tar_header
from tests.builders import Dist

TOP = "tarbomb-1.0"


def write(tmp_path: Path, data: bytes, name: str = "upload") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(path: Path, packagetype: str, needle: str, strict: bool = True) -> str:
    with pytest.raises(UploadRejected) as caught:
        extract_metadata(path, packagetype, strict)
    assert needle in caught.value.reason, caught.value.reason
    assert caught.value.status == 400
    return caught.value.reason


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The furthest position gzip inflated to, and the most tar members tarfile held at once."""
    seen = {"furthest": 0, "members": 0}
    real_read, real_seek, real_next = gzip.GzipFile.read, gzip.GzipFile.seek, tarfile.TarFile.next

    def read(self: gzip.GzipFile, size: int = -1) -> bytes:
        data = real_read(self, size)
        seen["furthest"] = max(seen["furthest"], self.tell())
        return data

    def seek(self: gzip.GzipFile, offset: int, whence: int = 0) -> int:
        position = real_seek(self, offset, whence)
        seen["furthest"] = max(seen["furthest"], position)
        return position

    def next_member(self: tarfile.TarFile) -> tarfile.TarInfo | None:
        member = real_next(self)
        seen["members"] = max(seen["members"], len(self.members))
        return member

    monkeypatch.setattr(gzip.GzipFile, "read", read)
    monkeypatch.setattr(gzip.GzipFile, "seek", seek)
    monkeypatch.setattr(tarfile.TarFile, "next", next_member)
    return seen


# --- M2: the issue's inputs, at full size ----------------------------------------------------------


def test_m2_the_issues_tar_bomb_is_refused_at_its_second_member(tmp_path: Path, watch: dict[str, int]) -> None:
    """M2's input exactly: 2 MiB holding 1,000,000 empty members named "a" cost +377 MiB and
    16 s, and was stored. "a" is outside PKG-INFO's directory: refused at once."""
    path = write(tmp_path, kit.tar_bomb(1_000_000), "tarbomb-1.0.tar.gz")
    assert path.stat().st_size < 3 * MIB
    refused(path, SDIST, "more than one top-level directory ('tarbomb-1.0' and 'a')")
    assert watch["furthest"] <= 4 * kit.BLOCK


def test_m2_a_million_empty_tar_members_stop_at_the_member_limit(tmp_path: Path, watch: dict[str, int]) -> None:
    """The same million members inside the top-level directory: the reader stops one member
    past MAX_ARCHIVE_MEMBERS, holding one member at a time."""
    path = write(tmp_path, kit.tar_bomb(1_000_000, "tarbomb-1.0/a"), "tarbomb-1.0.tar.gz")
    refused(path, SDIST, f"more than {archives.MAX_ARCHIVE_MEMBERS} members, the limit for this server")
    assert watch["members"] <= 1
    assert watch["furthest"] <= (archives.MAX_ARCHIVE_MEMBERS + 3) * kit.BLOCK


def test_m2_a_2_mib_gzip_bomb_stops_at_the_unpacked_limit(tmp_path: Path, watch: dict[str, int]) -> None:
    """M2: 2 MiB of gzip inflating to 2 GiB (a member of zeros after PKG-INFO). Inflating stops at
    the larger of 64 MiB and 50 times the file's size (warehouse's ratio rule)."""
    data = kit.gzip_member(tar_file(f"{TOP}/PKG-INFO", kit.PKG_INFO) + tar_header(f"{TOP}/bomb", 2048 * MIB))
    data += kit.zeros(2048 * MIB) + kit.gzip_member(kit.tar_end())
    path = write(tmp_path, data, "tarbomb-1.0.tar.gz")
    assert path.stat().st_size <= 2.5 * MIB
    reason = refused(path, SDIST, "unpacks to more than")
    limit = archives.unpacked_limit(path.stat().st_size)
    assert f"{limit // MIB} MiB" in reason and "the limit for this server" in reason
    assert watch["furthest"] <= limit + archives.MAX_TAR_HEADER_BYTES


def test_m2_300k_central_directory_entries_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """M2: a zip listing 300,000 entries cost +160 MiB. The directory is walked, nothing kept,
    and the walk stops one entry past the limit, even when the end record understates the count."""
    entries = [Entry(f"demo/{n}.py", b"", method=0) for n in range(300_000)]
    honest = kit.wheel(*entries, zip64=True).build()  # more than 65,535 entries take a ZIP64 end record
    lying = kit.wheel(*entries, claimed_count=3).build()
    walked: list[int] = []
    real_entries = wheelzip._entries

    def counted(*args: Any) -> Iterator[Any]:
        walked.append(0)
        for item in real_entries(*args):
            walked[-1] += 1
            yield item

    monkeypatch.setattr(wheelzip, "_entries", counted)
    for data in (honest, lying):
        refused(write(tmp_path, data, "demo-1.0-py3-none-any.whl"), WHEEL, f"more than {archives.MAX_ARCHIVE_MEMBERS}")
    assert walked == [archives.MAX_ARCHIVE_MEMBERS + 1], "the honest count is refused before any walk"


# --- M2: the family of bounds, one table per archive kind -------------------------------------------


@pytest.mark.parametrize(("build", "needle"), [
    pytest.param(lambda: sdist(tar_header(f"{TOP}/big", 200 * MIB)) + kit.zeros(256 * MIB),
                 "unpacks to more than", id="member-data-seeked-over"),
    pytest.param(lambda: sdist() + kit.zeros(256 * MIB), "unpacks to more than", id="zeros-after-the-archive"),
    pytest.param(lambda: kit.gzip_member(tar_header("x", 2048 * MIB, tarfile.XHDTYPE)) + kit.zeros(128 * MIB),
                 "a tar header (pax or GNU long name) is larger than 64 KiB", id="pax-header-of-2-gib"),
    pytest.param(lambda: kit.gzip_member(tar_header("././@LongLink", 1024 * MIB, tarfile.GNUTYPE_LONGNAME))
                 + kit.zeros(64 * MIB), "larger than 64 KiB", id="gnu-long-name-of-1-gib"),
    pytest.param(lambda: sdist(tar_header(f"{TOP}/x", 0, fmt=tarfile.PAX_FORMAT, comment="c" * 70_000)),
                 "larger than 64 KiB", id="pax-header-of-70-kib"),
    pytest.param(lambda: kit.gzip_member(tar_header(f"{TOP}/PKG-INFO", 17 * MIB)) + kit.zeros(17 * MIB, MIB),
                 "PKG-INFO is larger than 16 MiB", id="pkg-info-of-17-mib"),
    pytest.param(lambda: sdist(tar_header(f"{TOP}/" + "d/" * 2100 + "x", 0, fmt=tarfile.PAX_FORMAT)),
                 "longer than 4096 bytes", id="member-path-of-4-kib"),
])
def test_m2_sdist_bounds(tmp_path: Path, watch: dict[str, int], build: Any, needle: str) -> None:
    path = write(tmp_path, build(), "tarbomb-1.0.tar.gz")
    refused(path, SDIST, needle)
    assert watch["furthest"] <= archives.unpacked_limit(path.stat().st_size) + archives.MAX_TAR_HEADER_BYTES


def test_m2_sdist_member_count_at_and_past_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archives, "MAX_ARCHIVE_MEMBERS", 5)
    files = [tar_file(f"{TOP}/{n}.py", b"") for n in range(4)]  # with PKG-INFO: five members
    assert extract_metadata(write(tmp_path, sdist(*files)), SDIST) == kit.PKG_INFO
    refused(write(tmp_path, sdist(*files, tar_file(f"{TOP}/5.py", b""))), SDIST, "more than 5 members")


def test_m2_an_unpacked_size_within_the_ratio_is_accepted(tmp_path: Path) -> None:
    """The ratio rule refuses bombs, not big sdists: 100 MiB of zeros in 100 KiB... is a bomb,
    but 60 MiB (under the free 64 MiB) is fine whatever it compresses to."""
    data = kit.gzip_member(tar_file(f"{TOP}/PKG-INFO", kit.PKG_INFO) + tar_header(f"{TOP}/data", 60 * MIB))
    data += kit.zeros(60 * MIB, 4 * MIB) + kit.gzip_member(kit.tar_end())
    assert extract_metadata(write(tmp_path, data), SDIST) == kit.PKG_INFO


def big_claim(size: int) -> Entry:
    return Entry("demo/data.bin", b"", method=0, size=size)


@pytest.mark.parametrize(("raw", "needle"), [
    pytest.param(kit.wheel(claimed_directory_size=33 * MIB), "central directory is larger than 32 MiB",
                 id="directory-of-33-mib"),
    pytest.param(kit.wheel(claimed_count=100_001, zip64=True), "more than 100000 members", id="claimed-count-zip64"),
    pytest.param(kit.wheel(big_claim(2**31)), "more than 64 MiB, the larger of 64 MiB and 50 times its compressed size",
                 id="entries-claim-2-gib"),
    pytest.param(kit.wheel(metadata=Entry("demo-1.0.dist-info/METADATA", kit.METADATA, size=17 * MIB)),
                 "METADATA is larger than 16 MiB", id="metadata-claims-17-mib"),
    pytest.param(kit.wheel(metadata=Entry("demo-1.0.dist-info/METADATA", b"M" * (20 * MIB), size=100)),
                 "METADATA does not match its size and CRC-32", id="metadata-inflates-past-its-size"),
    pytest.param(kit.wheel(metadata=Entry("demo-1.0.dist-info/METADATA", kit.METADATA, crc=1)),
                 "METADATA does not match its size and CRC-32", id="metadata-crc"),
])
def test_m2_wheel_bounds(tmp_path: Path, raw: RawZip, needle: str) -> None:
    refused(write(tmp_path, raw.build()), WHEEL, needle)


def test_m2_the_ratio_rule_is_warehouses(tmp_path: Path) -> None:
    """Up to 64 MiB unpacked is free; beyond, at most 50 times the archive's size."""
    free = kit.wheel(big_claim(64 * MIB - 1000)).build()
    assert extract_metadata(write(tmp_path, free), WHEEL, True) == kit.METADATA
    padded = kit.wheel(big_claim(65 * MIB), Entry("demo/pad.bin", b"\xff" * (2 * MIB), method=0)).build()
    assert extract_metadata(write(tmp_path, padded), WHEEL, True) == kit.METADATA


# --- L11 and its family: member paths and kinds ------------------------------------------------------


@pytest.mark.parametrize(("member", "needle"), [
    pytest.param(tar_file("/etc/passwd", b"x"), "member path '/etc/passwd' is absolute", id="absolute"),
    pytest.param(tar_file("../evil.py", b"x"), "leaves the archive's directory", id="dotdot-first"),
    pytest.param(tar_file(f"{TOP}/../../evil.py", b"x"), "leaves the archive's directory", id="dotdot-inside"),
    pytest.param(tar_file(f"{TOP}/a\\..\\..\\evil.py", b"x"), "a control character or a backslash", id="backslash"),
    pytest.param(tar_file(f"{TOP}/a\nb", b"x", fmt=tarfile.PAX_FORMAT), "control character", id="newline"),
    pytest.param(tar_file("other-1.0/x.py", b"x"), "more than one top-level directory", id="second-top"),
    pytest.param(tar_file("./x.py", b"x"), "not inside a top-level directory", id="dot-top"),
    pytest.param(tar_header(f"{TOP}/etc", type_=tarfile.SYMTYPE, linkname="/etc"), "points outside", id="symlink-abs"),
    pytest.param(tar_header(f"{TOP}/a/up", type_=tarfile.SYMTYPE, linkname="../../.."), "points outside",
                 id="symlink-up"),
    pytest.param(tar_header(f"{TOP}/hard", type_=tarfile.LNKTYPE, linkname="../outside"), "points outside",
                 id="hardlink-up"),
    pytest.param(tar_header(f"{TOP}/hard", type_=tarfile.LNKTYPE, linkname="/etc/shadow"), "points outside",
                 id="hardlink-abs"),
    pytest.param(tar_header(f"{TOP}/tty", type_=tarfile.CHRTYPE), "is a device or a FIFO", id="char-device"),
    pytest.param(tar_header(f"{TOP}/sda", type_=tarfile.BLKTYPE), "is a device or a FIFO", id="block-device"),
    pytest.param(tar_header(f"{TOP}/pipe", type_=tarfile.FIFOTYPE), "is a device or a FIFO", id="fifo"),
    pytest.param(tar_header(f"{TOP}/sparse", type_=tarfile.GNUTYPE_SPARSE, fmt=tarfile.GNU_FORMAT),
                 "is a sparse file", id="gnu-sparse"),
    pytest.param(tar_file(f"{TOP}/PKG-INFO", b"Name: evil\n"), "more than one top-level PKG-INFO",
                 id="second-pkg-info"),
])
def test_l11_unsafe_sdist_members_are_refused(tmp_path: Path, member: bytes, needle: str) -> None:
    """L11 (the source distribution format's extraction rules; warehouse's single top-level
    directory and no sparse members): refused though nothing here extracts, since others do."""
    refused(write(tmp_path, sdist(member)), SDIST, needle)


@pytest.mark.parametrize("member", [
    pytest.param(tar_header(f"{TOP}/a/link", type_=tarfile.SYMTYPE, linkname="../b/c.py"), id="symlink-inside"),
    pytest.param(tar_header(f"{TOP}/hard", type_=tarfile.LNKTYPE, linkname=f"{TOP}/PKG-INFO"), id="hardlink-inside"),
    pytest.param(tar_header(f"{TOP}/dir", type_=tarfile.DIRTYPE), id="directory"),
    pytest.param(tar_file(f"{TOP}/src/x.egg-info/PKG-INFO", b"Name: x\n"), id="nested-pkg-info"),
    pytest.param(tar_file(f"{TOP}/" + "d" * 200 + "/x.py", b"", fmt=tarfile.PAX_FORMAT), id="long-path"),
    pytest.param(tar_file(f"{TOP}/caf\u00e9 \u6771\u4eac.txt", b"", fmt=tarfile.PAX_FORMAT), id="unicode-path"),
])
def test_l11_harmless_members_are_accepted(tmp_path: Path, member: bytes) -> None:
    assert extract_metadata(write(tmp_path, sdist(member)), SDIST) == kit.PKG_INFO


@pytest.mark.parametrize(("entry", "needle"), [
    pytest.param(Entry("/etc/passwd"), "member path '/etc/passwd' is absolute", id="absolute"),
    pytest.param(Entry("demo/../../evil.py"), "leaves the archive's directory", id="dotdot"),
    pytest.param(Entry("demo\\..\\evil.py"), "backslash", id="backslash"),
    pytest.param(Entry("demo/a\x00b"), "control character", id="nul"),
    pytest.param(Entry("demo/" + "x" * 5000), "longer than 4096 bytes", id="long-name"),
    pytest.param(Entry("demo/x.py", b"data", method=12), "compression method 12", id="bzip2"),
    pytest.param(Entry("demo/x.py", b"", flags=0x801), "is encrypted", id="encrypted"),
])
def test_l11_unsafe_wheel_entries_are_refused_on_upload_only(tmp_path: Path, entry: Entry, needle: str) -> None:
    """The same rules for wheels (pip refuses such members at install). An upstream wheel that
    breaks them still gives its metadata: the rules are for what this server accepts."""
    path = write(tmp_path, kit.wheel(entry).build())
    refused(path, WHEEL, needle)
    assert extract_metadata(path, WHEEL, strict=False) == kit.METADATA


@pytest.mark.parametrize(("raw", "needle"), [
    pytest.param(kit.wheel(gap=b"hidden"), "unexplained bytes", id="gap-before-end-record"),
    pytest.param(kit.wheel(trailer=b"junk"), "no end-of-central-directory record", id="junk-after-end-record"),
    pytest.param(kit.wheel(claimed_count=5), "counts 5 entries", id="count-mismatch"),
    pytest.param(kit.wheel(claimed_directory_size=10), "not a valid zip archive", id="size-mismatch"),
])
def test_wheel_framing_is_exact_on_upload(tmp_path: Path, raw: RawZip, needle: str) -> None:
    refused(write(tmp_path, raw.build()), WHEEL, needle)


@pytest.mark.parametrize("raw", [
    pytest.param(kit.wheel(comment=b"a comment"), id="comment"),
    pytest.param(kit.wheel(prefix=b"#!/bin/sh\nexit 0\n"), id="prepended-data-with-true-offsets"),
    pytest.param(kit.wheel(zip64=True), id="zip64-end-record"),
    pytest.param(kit.wheel(metadata=Entry("demo-1.0.dist-info/METADATA", kit.METADATA, method=0)), id="stored"),
])
def test_valid_wheels_of_every_framing_are_read(tmp_path: Path, raw: RawZip) -> None:
    data = raw.build()
    assert zipfile.ZipFile(io.BytesIO(data)).read("demo-1.0.dist-info/METADATA") == kit.METADATA  # valid zip
    assert extract_metadata(write(tmp_path, data), WHEEL, True) == kit.METADATA


def test_a_zip64_wheel_written_by_zipfile_is_read(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("demo-1.0.dist-info/METADATA", "w", force_zip64=True) as member:
            member.write(kit.METADATA)
    assert extract_metadata(write(tmp_path, buffer.getvalue()), WHEEL, True) == kit.METADATA


def test_real_builds_pass_every_rule(tmp_path: Path) -> None:
    dist = Dist("Real.Pkg", "2.0", payload=300_000)
    for path, kind in zip(dist.write(tmp_path), (WHEEL, SDIST)):
        assert extract_metadata(path, kind, True) == dist.metadata()
