"""A wheel's core metadata from a few byte ranges of it, as uv's and pip's lazy wheels read it.

Pure: the caller fetches the ranges (HTTP ``Range``) and hands the bytes in. A zip archive ends
with its end-of-central-directory record (EOCD, APPNOTE 4.3.16), which gives where the central
directory is; the central directory lists every member with the offset of its local header; the
``*.dist-info/METADATA`` member is read from there and inflated. Everything is bounded: a central
directory or a METADATA beyond the limits below is refused, not read. ZIP64 archives are left to
the caller's fallback (download the whole wheel).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from proxy.core.errors import ProxyError

# The EOCD is 22 bytes plus a comment of at most 65,535: this tail always holds it, and for most
# wheels the whole central directory too, so two requests usually suffice.
TAIL_BYTES = 22 + 65535 + 64 * 1024
MAX_CENTRAL_DIRECTORY = 32 * 1024**2
MAX_METADATA_BYTES = 16 * 1024**2
# A local header is 30 bytes plus name and extra field; the extra field may differ from the
# central directory's, so a little more than the central directory's figures is read at once.
LOCAL_HEADER_SLACK = 1024

_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD_SIGNATURE = b"PK\x05\x06"
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_STORED, _DEFLATED = 0, 8
_METADATA_NAME = re.compile(r"^[^/]+\.dist-info/METADATA$")


class LazyWheelError(ProxyError):
    """The wheel cannot be read by ranges (not a zip, ZIP64, no single METADATA, too large)."""


@dataclass(frozen=True, slots=True)
class Span:
    """A byte range ``[start, end)`` of the archive."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Member:
    """One archive member as the central directory describes it."""

    name: str
    header_offset: int
    compressed_size: int
    size: int
    crc32: int
    method: int
    name_length: int
    extra_length: int


def central_directory(tail: bytes, tail_start: int) -> Span:
    """Where the central directory is, from the archive's tail (read from ``tail_start``)."""
    position = tail.rfind(_EOCD_SIGNATURE, max(0, len(tail) - TAIL_BYTES))
    if position < 0 or len(tail) - position < _EOCD.size:
        raise LazyWheelError("no end-of-central-directory record: not a zip archive")
    _, disk, _, _, entries, size, offset, _ = _EOCD.unpack_from(tail, position)
    if 0xFFFF in (disk, entries) or 0xFFFFFFFF in (size, offset):
        raise LazyWheelError("a ZIP64 archive")
    if disk != 0:
        raise LazyWheelError("a multi-disk archive")
    if size > MAX_CENTRAL_DIRECTORY:
        raise LazyWheelError(f"central directory of {size} bytes is over the limit")
    if offset + size > tail_start + position:
        raise LazyWheelError("central directory overlaps its end record")
    return Span(offset, offset + size)


def find_metadata(directory: bytes) -> Member:
    """The one top-level ``*.dist-info/METADATA`` member listed in the central directory."""
    found = [member for member in _members(directory) if _METADATA_NAME.match(member.name)]
    if len(found) != 1:
        raise LazyWheelError(f"{len(found)} top-level *.dist-info/METADATA members, expected 1")
    member = found[0]
    if member.size > MAX_METADATA_BYTES or member.compressed_size > MAX_METADATA_BYTES:
        raise LazyWheelError(f"METADATA of {member.size} bytes is over the limit")
    if member.method not in (_STORED, _DEFLATED):
        raise LazyWheelError(f"METADATA compressed with method {member.method}")
    return member


def _members(directory: bytes) -> list[Member]:
    members, position = [], 0
    while position + _CENTRAL.size <= len(directory):
        fields = _CENTRAL.unpack_from(directory, position)
        if fields[0] != _CENTRAL_SIGNATURE:
            raise LazyWheelError("corrupt central directory")
        method, crc, compressed, size = fields[4], fields[7], fields[8], fields[9]
        name_length, extra_length, comment_length, offset = fields[10], fields[11], fields[12], fields[16]
        start = position + _CENTRAL.size
        raw_name = directory[start:start + name_length]
        name = raw_name.decode("utf-8" if fields[3] & 0x800 else "cp437", errors="replace")
        members.append(Member(name, offset, compressed, size, crc, method, name_length, extra_length))
        position = start + name_length + extra_length + comment_length
    return members


def member_span(member: Member) -> Span:
    """The range that holds the member's local header and its data (usually: one request)."""
    end = member.header_offset + _LOCAL.size + member.name_length + member.extra_length
    return Span(member.header_offset, end + member.compressed_size + LOCAL_HEADER_SLACK)


def member_data(member: Member, block: bytes) -> bytes | Span:
    """The member's bytes from ``block`` (read at ``member_span``), or the further span still
    needed when its local extra field is longer than the slack allowed for."""
    if len(block) < _LOCAL.size or block[:4] != _LOCAL_SIGNATURE:
        raise LazyWheelError("no local header where the central directory points")
    name_length, extra_length = _LOCAL.unpack_from(block)[9:11]
    start = _LOCAL.size + name_length + extra_length
    end = start + member.compressed_size
    if end > len(block):
        return Span(member.header_offset, member.header_offset + end)
    return _inflate(member, block[start:end])


def _inflate(member: Member, compressed: bytes) -> bytes:
    if member.method == _STORED:
        data = compressed
    else:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            data = inflater.decompress(compressed, MAX_METADATA_BYTES + 1)
        except zlib.error as exc:
            raise LazyWheelError(f"METADATA does not inflate: {exc}") from None
    if len(data) != member.size or zlib.crc32(data) != member.crc32:
        raise LazyWheelError("METADATA does not match its size and CRC-32")
    return data


async def read_metadata(tail: Callable[[int], Awaitable[tuple[bytes, int]]],
                        fetch: Callable[[Span], Awaitable[bytes]]) -> bytes:
    """The wheel's METADATA bytes, reading only what it needs (usually two requests).

    ``tail(n)`` gives the archive's last ``n`` bytes (all of it when shorter) and its total size;
    ``fetch(span)`` gives the bytes of ``span``. LazyWheelError when the archive cannot be read
    this way (the caller then downloads the whole wheel).
    """
    tail_bytes, total_size = await tail(TAIL_BYTES)
    tail_start = total_size - len(tail_bytes)
    where = central_directory(tail_bytes, tail_start)
    if where.start >= tail_start:
        directory = tail_bytes[where.start - tail_start:where.end - tail_start]
    else:
        directory = await fetch(where)
    member = find_metadata(directory)
    span = member_span(member)
    if span.start >= tail_start:  # the member is in the tail already
        block = tail_bytes[span.start - tail_start:]
    else:
        block = await fetch(Span(span.start, min(span.end, total_size)))
    data = member_data(member, block)
    if isinstance(data, Span):
        data = member_data(member, await fetch(data))
        if isinstance(data, Span):
            raise LazyWheelError("local header larger than announced")
    return data
