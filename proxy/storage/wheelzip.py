"""A wheel's METADATA from its zip central directory, walked entry by entry within bounds.

The end record says where the central directory is (ZIP64 end records too, APPNOTE 4.3.14-16);
its entries are read one at a time and none is kept but the ``*.dist-info/METADATA`` one, which
:mod:`proxy.core.lazywheel` then reads from its local header, inflating at most MAX_METADATA_BYTES and
checking size and CRC-32. The limits and path rules are :mod:`proxy.storage.archives`'.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from proxy.core import lazywheel
from proxy.core.errors import ProxyError, UploadRejected
from proxy.storage.archives import (
    MAX_ARCHIVE_MEMBERS,
    MAX_CENTRAL_DIRECTORY,
    MAX_METADATA_BYTES,
    MIB,
    check_member_path,
    limit_text,
    too_many,
    unpacked_limit,
)

_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD_SIGNATURE = b"PK\x05\x06"
_LOCATOR = struct.Struct("<4sIQI")
_LOCATOR_SIGNATURE = b"PK\x06\x07"
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")
_EOCD64_SIGNATURE = b"PK\x06\x06"
_ENTRY = struct.Struct("<4sHHHHHHIIIHHHHHII")
_ENTRY_SIGNATURE = b"PK\x01\x02"
_ZIP64_EXTRA = 0x0001
_STORED, _DEFLATED = 0, 8
_ENCRYPTED = 0x1
_UTF8_NAME = 0x800


class _BadZip(ProxyError):
    """The zip structure is damaged; reported as "not a valid zip archive"."""


@dataclass(frozen=True, slots=True)
class _Directory:
    offset: int
    size: int
    entries: int
    end: int  # where the central directory must end: at the (ZIP64) end record


def wheel_metadata(path: Path, strict: bool) -> bytes:
    """The bytes of the wheel's one top-level ``*.dist-info/METADATA``; UploadRejected otherwise.

    Bounded whatever the archive claims: at most MAX_CENTRAL_DIRECTORY bytes and
    MAX_ARCHIVE_MEMBERS entries are walked, none kept, and METADATA is inflated to at most
    MAX_METADATA_BYTES. ``strict`` adds the upload rules: safe member paths, stored or deflated
    members only, nothing encrypted, the ratio rule on the unpacked total, and a central
    directory that ends exactly at its end record (nothing hidden between them).
    """
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            directory = _find_directory(handle, size, strict)
            member = _scan_directory(handle, directory, size, strict)
            return _read_member(handle, member, size)
    except _BadZip as exc:
        raise UploadRejected(f"Invalid wheel: not a valid zip archive ({exc}).") from None
    except lazywheel.LazyWheelError as exc:
        raise UploadRejected(f"Invalid wheel: {exc}.") from None


def _find_directory(handle: BinaryIO, size: int, strict: bool) -> _Directory:
    tail_start = max(0, size - _EOCD.size - 0xFFFF)
    handle.seek(tail_start)
    tail = handle.read()
    position = tail.rfind(_EOCD_SIGNATURE)
    while position >= 0:  # the last record whose comment reaches the end of the file
        if position + _EOCD.size <= len(tail):
            comment = _EOCD.unpack_from(tail, position)[7]
            end = position + _EOCD.size + comment
            if end == len(tail) or (not strict and end < len(tail)):
                break
        position = tail.rfind(_EOCD_SIGNATURE, 0, position)
    if position < 0:
        raise _BadZip("no end-of-central-directory record")
    _, disk, disk_cd, _, entries, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, position)
    eocd_at = tail_start + position
    locator_at = position - _LOCATOR.size
    if locator_at >= 0 and tail[locator_at:locator_at + 4] == _LOCATOR_SIGNATURE:
        return _find_directory64(handle, _LOCATOR.unpack_from(tail, locator_at)[2], tail_start + locator_at)
    if disk != 0 or disk_cd != 0:
        raise _BadZip("a multi-disk archive")
    return _Directory(cd_offset, cd_size, entries, eocd_at)


def _find_directory64(handle: BinaryIO, record_at: int, locator_at: int) -> _Directory:
    if record_at + _EOCD64.size > locator_at:
        raise _BadZip("the ZIP64 end record is not where its locator says")
    handle.seek(record_at)
    record = handle.read(_EOCD64.size)
    signature, _, _, _, disk, disk_cd, _, entries, cd_size, cd_offset = _EOCD64.unpack(record)
    if signature != _EOCD64_SIGNATURE:
        raise _BadZip("the ZIP64 end record is not where its locator says")
    if disk != 0 or disk_cd != 0:
        raise _BadZip("a multi-disk archive")
    return _Directory(cd_offset, cd_size, entries, record_at)


def _scan_directory(handle: BinaryIO, directory: _Directory, size: int, strict: bool) -> lazywheel.Member:
    """Walk every entry, keeping only the METADATA candidates (refused unless exactly one)."""
    if directory.size > MAX_CENTRAL_DIRECTORY:
        raise UploadRejected(f"Invalid wheel: its central directory is larger than "
                             f"{MAX_CENTRAL_DIRECTORY // MIB} MiB, the limit for this server.")
    if directory.entries > MAX_ARCHIVE_MEMBERS:
        raise too_many("wheel")
    if directory.offset + directory.size > directory.end:
        raise _BadZip("the central directory overlaps its end record")
    if strict and directory.offset + directory.size != directory.end:
        raise _BadZip("unexplained bytes between the central directory and its end record")
    handle.seek(directory.offset)
    candidates, count, unpacked = [], 0, 0
    for member, flags in _entries(handle, directory.size):
        count += 1
        if count > MAX_ARCHIVE_MEMBERS:
            raise too_many("wheel")
        if member.header_offset >= directory.offset:
            raise _BadZip(f"entry {member.name!r} points past the archive's data")
        if strict:
            _check_entry(member, flags)
        unpacked += member.size
        if member.name.count("/") == 1 and member.name.endswith(".dist-info/METADATA"):
            candidates.append(member)
    if strict and count != directory.entries:
        raise _BadZip(f"the end record counts {directory.entries} entries, the central directory has {count}")
    if strict and unpacked > unpacked_limit(size):
        raise UploadRejected(f"Invalid wheel: it unpacks to {unpacked} bytes, more than {limit_text(size)} "
                             "(the limit for this server).")
    if len(candidates) != 1:
        raise UploadRejected("Invalid wheel: expected exactly one top-level *.dist-info/METADATA.")
    return candidates[0]


def _entries(handle: BinaryIO, directory_size: int) -> Iterator[tuple[lazywheel.Member, int]]:
    """Each central-directory entry as a Member (ZIP64 sizes and offsets applied), with its flags."""
    consumed = 0
    while consumed < directory_size:
        fixed = handle.read(_ENTRY.size)
        if len(fixed) < _ENTRY.size or fixed[:4] != _ENTRY_SIGNATURE:
            raise _BadZip("corrupt central directory")
        fields = _ENTRY.unpack(fixed)
        flags, method, crc, compressed, size = fields[3], fields[4], fields[7], fields[8], fields[9]
        name_length, extra_length, comment_length, offset = fields[10], fields[11], fields[12], fields[16]
        variable = handle.read(name_length + extra_length + comment_length)
        if len(variable) < name_length + extra_length + comment_length:
            raise _BadZip("corrupt central directory")
        consumed += _ENTRY.size + len(variable)
        name = variable[:name_length].decode("utf-8" if flags & _UTF8_NAME else "cp437", errors="replace")
        size, compressed, offset = _zip64_values(variable[name_length:name_length + extra_length],
                                                 size, compressed, offset)
        yield lazywheel.Member(name, offset, compressed, size, crc, method, name_length, extra_length), flags
    if consumed != directory_size:
        raise _BadZip("corrupt central directory")


def _zip64_values(extra: bytes, size: int, compressed: int, offset: int) -> tuple[int, int, int]:
    """APPNOTE 4.5.3: the ZIP64 extra field holds, in this order, the values saturated at 0xFFFFFFFF."""
    position = 0
    while position + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, position)
        data = extra[position + 4:position + 4 + length]
        if tag == _ZIP64_EXTRA:
            values = [value for value in (size, compressed, offset) if value == 0xFFFFFFFF]
            if len(data) < 8 * len(values):
                raise _BadZip("corrupt ZIP64 extra field")
            wide = iter(struct.unpack_from(f"<{len(values)}Q", data))
            size, compressed, offset = (next(wide) if value == 0xFFFFFFFF else value
                                        for value in (size, compressed, offset))
        position += 4 + length
    return size, compressed, offset


def _check_entry(member: lazywheel.Member, flags: int) -> None:
    check_member_path("wheel", member.name)
    if flags & _ENCRYPTED:
        raise UploadRejected(f"Invalid wheel: member {member.name!r} is encrypted.")
    if member.method not in (_STORED, _DEFLATED):
        raise UploadRejected(f"Invalid wheel: member {member.name!r} uses compression method {member.method}; "
                             "only stored and deflated members are accepted.")


def _read_member(handle: BinaryIO, member: lazywheel.Member, size: int) -> bytes:
    if member.size > MAX_METADATA_BYTES or member.compressed_size > MAX_METADATA_BYTES:
        raise UploadRejected(f"Invalid wheel: METADATA is larger than {MAX_METADATA_BYTES // MIB} MiB, "
                             "the limit for this server.")
    if member.method not in (_STORED, _DEFLATED):
        raise UploadRejected(f"Invalid wheel: METADATA uses compression method {member.method}.")
    span = lazywheel.member_span(member)
    for _ in range(2):  # the second time when the local extra field is longer than expected
        handle.seek(span.start)
        data = lazywheel.member_data(member, handle.read(min(span.end, size) - span.start))
        if not isinstance(data, lazywheel.Span):
            return data
        span = data
    raise _BadZip("a local header larger than announced")
