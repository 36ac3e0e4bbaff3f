"""Bounded reading of distribution archives: the shared limits and path rules, and an sdist's tar stream.

What reading an archive costs follows from what its headers claim, not from its size: 2 MiB of
gzip can hold a million tar members or inflate to gigabytes, a zip's central directory can list
hundreds of thousands of entries, a tar header can announce a name of a gigabyte. Each of these
is bounded by a limit below, checked before the cost is paid, and an archive beyond one is
refused with UploadRejected naming the limit:

- the zip central directory is walked entry by entry and nothing is kept but the one METADATA
  entry (:mod:`proxy.storage.wheelzip`);
- the tar stream is read through :class:`_BoundedStream`, whose position is the count of bytes
  inflated, and tarfile is kept from accumulating one TarInfo per member.

Uploads (``strict``) are also held to PyPI's rules (warehouse ``forklift/legacy.py``) and to the
source distribution format specification, whose readers must refuse what an extraction could
turn against its user (tarfile's ``data`` filter): member paths that are absolute, leave the
archive's directory (``..``), or carry control characters or backslashes; in an sdist also links
that point outside it, devices and FIFOs, sparse members, and more than one top-level directory.
"""

from __future__ import annotations

import gzip
import posixpath
import re
import tarfile
import zlib
from pathlib import Path
from typing import BinaryIO

from proxy.core import lazywheel
from proxy.core.errors import UploadRejected

MIB = 1024 * 1024
# Members of one archive (tar members, zip central-directory entries). The largest real
# distributions (generated SDKs) hold tens of thousands of files.
MAX_ARCHIVE_MEMBERS = 100_000
# A member's path, or a link's target: PATH_MAX on Linux.
MAX_MEMBER_NAME_BYTES = 4096
# One tar header block sequence that tarfile reads whole: a pax extended header or a GNU long
# name. Real ones hold a path and a few numbers.
MAX_TAR_HEADER_BYTES = 64 * 1024
# Unpacked bytes: up to this much freely, beyond it at most MAX_COMPRESSION_RATIO times the
# archive's own size (warehouse's COMPRESSION_RATIO_MIN_SIZE and COMPRESSION_RATIO_THRESHOLD).
FREE_UNPACKED_BYTES = 64 * MIB
MAX_COMPRESSION_RATIO = 50
# The same limits as for upstream wheels read by ranges.
MAX_CENTRAL_DIRECTORY = lazywheel.MAX_CENTRAL_DIRECTORY
MAX_METADATA_BYTES = lazywheel.MAX_METADATA_BYTES

_READ_CHUNK = 64 * 1024
_UNSAFE_IN_PATH = re.compile(r"[\x00-\x1f\x7f\\]")


def unpacked_limit(compressed_size: int) -> int:
    """Bytes an archive of ``compressed_size`` bytes may unpack to (warehouse's ratio rule)."""
    return max(FREE_UNPACKED_BYTES, MAX_COMPRESSION_RATIO * compressed_size)


def limit_text(compressed_size: int) -> str:
    """The unpacked limit in words, for refusals."""
    return (f"{unpacked_limit(compressed_size) // MIB} MiB, the larger of {FREE_UNPACKED_BYTES // MIB} MiB "
            f"and {MAX_COMPRESSION_RATIO} times its compressed size")


def check_member_path(kind: str, name: str) -> None:
    """Refuse a member path an extraction could turn against its user (see the module's doc)."""
    if len(name.encode("utf-8", "surrogateescape")) > MAX_MEMBER_NAME_BYTES:
        raise UploadRejected(f"Invalid {kind}: a member path is longer than {MAX_MEMBER_NAME_BYTES} bytes, "
                             "the limit for this server.")
    if name.startswith("/"):
        raise UploadRejected(f"Invalid {kind}: member path {name!r} is absolute.")
    if ".." in name.split("/"):
        raise UploadRejected(f"Invalid {kind}: member path {name!r} leaves the archive's directory ('..').")
    if _UNSAFE_IN_PATH.search(name):
        raise UploadRejected(f"Invalid {kind}: member path {name!r} contains a control character or a backslash.")


def too_many(kind: str) -> UploadRejected:
    """The refusal of an archive with more than MAX_ARCHIVE_MEMBERS members."""
    return UploadRejected(f"Invalid {kind}: it has more than {MAX_ARCHIVE_MEMBERS} members, "
                          "the limit for this server.")


# Sdists: the tar stream ---------------------------------------------------------------------------


class _BoundedStream:
    """The inflated tar stream as tarfile reads it, refusing to go past ``limit`` bytes.

    The position is the count of bytes inflated so far, so a forward seek (tarfile skipping a
    member) is checked before gzip inflates its way there; seeking back would inflate the
    stream again from its start, and is refused. One read may not exceed MAX_TAR_HEADER_BYTES:
    tarfile reads member data in the caller's chunks, and a pax header or GNU long name whole,
    at the size its header announces.
    """

    def __init__(self, stream: BinaryIO, compressed_size: int) -> None:
        self._stream = stream
        self._compressed_size = compressed_size
        self._limit = unpacked_limit(compressed_size)

    def tell(self) -> int:
        return self._stream.tell()

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > MAX_TAR_HEADER_BYTES:
            raise UploadRejected(f"Invalid sdist: a tar header (pax or GNU long name) is larger than "
                                 f"{MAX_TAR_HEADER_BYTES // 1024} KiB, the limit for this server.")
        data = self._stream.read(size)
        self._check(self.tell())
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        here = self.tell()
        target = offset + (here if whence == 1 else 0)
        if whence not in (0, 1) or target < here:
            raise UploadRejected("Invalid sdist: not a valid .tar.gz archive (its headers point backwards).")
        self._check(target)
        return self._stream.seek(target)

    def _check(self, position: int) -> None:
        if position > self._limit:
            raise UploadRejected(f"Invalid sdist: it unpacks to more than {limit_text(self._compressed_size)} "
                                 "(the limit for this server).")


def sdist_metadata(path: Path) -> bytes:
    """The bytes of the sdist's top-level ``PKG-INFO``; UploadRejected otherwise.

    The whole stream is read, as warehouse does (PKG-INFO usually comes first: stopping there
    would accept a truncated or corrupt sdist), through the bounds of the module's doc, and each
    member is held to the upload rules.
    """
    try:
        with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            stream = _BoundedStream(unzipped, path.stat().st_size)  # type: ignore[arg-type]
            with tarfile.open(fileobj=stream, mode="r:") as archive:  # type: ignore[call-overload]
                found = _scan_tar(archive)
            while stream.read(_READ_CHUNK):  # to the gzip trailer: its CRC and length are checked
                pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise UploadRejected(f"Invalid sdist: not a valid .tar.gz archive ({exc}).") from None
    if found is None:
        raise UploadRejected("Invalid sdist: no top-level PKG-INFO found.")
    return found


def _scan_tar(archive: tarfile.TarFile) -> bytes | None:
    found: bytes | None = None
    top: str | None = None
    count = 0
    while (member := archive.next()) is not None:
        # TarFile keeps every member it has read in ``members`` (the list getmembers() returns;
        # not in typeshed, but unchanged since Python 2). Nothing here needs them, and a
        # million members would cost hundreds of MiB.
        archive.members.clear()  # type: ignore[attr-defined]
        count += 1
        if count > MAX_ARCHIVE_MEMBERS:
            raise too_many("sdist")
        top = _check_tar_member(member, top)
        if member.name == f"{top}/PKG-INFO" and member.isfile():
            if found is not None:
                raise UploadRejected("Invalid sdist: it has more than one top-level PKG-INFO.")
            found = _read_pkg_info(archive, member)
    return found


def _check_tar_member(member: tarfile.TarInfo, top: str | None) -> str:
    """The archive's top-level directory, once ``member`` is found to be under it and harmless."""
    name = member.name
    check_member_path("sdist", name)
    first = name.split("/", 1)[0]
    if first in ("", "."):
        raise UploadRejected(f"Invalid sdist: member path {name!r} is not inside a top-level directory.")
    if top is not None and first != top:
        raise UploadRejected(f"Invalid sdist: more than one top-level directory ({top!r} and {first!r}).")
    if member.issparse():
        raise UploadRejected(f"Invalid sdist: member {name!r} is a sparse file.")
    if member.isdev():
        raise UploadRejected(f"Invalid sdist: member {name!r} is a device or a FIFO.")
    if member.issym() or member.islnk():
        _check_link(member, first)
    return first


def _check_link(member: tarfile.TarInfo, top: str) -> None:
    """A link must stay inside the top-level directory (``..`` is fine while it does). A symlink's
    target is relative to its own directory, a hard link's to the archive's root."""
    name, target = member.name, member.linkname
    if len(target.encode("utf-8", "surrogateescape")) > MAX_MEMBER_NAME_BYTES or _UNSAFE_IN_PATH.search(target):
        raise UploadRejected(f"Invalid sdist: link {name!r} has an unsafe target {target[:200]!r}.")
    base = posixpath.dirname(name) if member.issym() else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    if target.startswith("/") or (resolved != top and not resolved.startswith(top + "/")):
        raise UploadRejected(f"Invalid sdist: link {name!r} points outside the archive's directory ({target!r}).")


def _read_pkg_info(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    if member.size > MAX_METADATA_BYTES:
        raise UploadRejected(f"Invalid sdist: PKG-INFO is larger than {MAX_METADATA_BYTES // MIB} MiB, "
                             "the limit for this server.")
    extracted = archive.extractfile(member)
    assert extracted is not None  # a regular file always has content
    data = bytearray()
    while chunk := extracted.read(_READ_CHUNK):
        data += chunk
    return bytes(data)
