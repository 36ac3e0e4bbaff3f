"""Hostile archives built byte by byte, cheaply: the inputs of issue 12 (M2, L11) and their family.

Large inflated sizes cost little here: a gzip file may hold several members, read as one stream,
so one compressed chunk repeated N times inflates to N times its content (a 2 GiB bomb is 32
copies of 64 MiB of zeros, compressed once). Zip archives are written record by record, so
their central directory can say anything.
"""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from dataclasses import dataclass, field
from functools import lru_cache

MIB = 1024 * 1024
BLOCK = 512
PKG_INFO = b"Metadata-Version: 2.1\nName: tarbomb\nVersion: 1.0\n\n"


def gzip_member(data: bytes, level: int = 6) -> bytes:
    """``data`` as one complete gzip member (header, deflate, CRC and length)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


@lru_cache(maxsize=None)
def zeros_member(size: int) -> bytes:
    return gzip_member(b"\0" * size, 9)  # deflate's best ratio: about 1,000 to 1


def tar_header(name: str, size: int = 0, type_: bytes = tarfile.REGTYPE, linkname: str = "",
               fmt: int = tarfile.USTAR_FORMAT, **pax: str) -> bytes:
    """The header block(s) of one member, without its data."""
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = size, type_, linkname
    if pax:
        info.pax_headers = dict(pax)
    return info.tobuf(fmt, "utf-8", "surrogateescape")


def tar_file(name: str, data: bytes, **kwargs: object) -> bytes:
    padding = -len(data) % BLOCK
    return tar_header(name, len(data), **kwargs) + data + b"\0" * padding  # type: ignore[arg-type]


def tar_end() -> bytes:
    return b"\0" * (2 * BLOCK)


def sdist(*members: bytes, top: str = "tarbomb-1.0", pkg_info: bytes = PKG_INFO) -> bytes:
    """A .tar.gz: PKG-INFO under ``top``, then ``members`` (raw tar bytes), then the end blocks."""
    return gzip_member(tar_file(f"{top}/PKG-INFO", pkg_info) + b"".join(members) + tar_end())


def tar_bomb(members: int, name: str = "a", chunk: int = 10_000) -> bytes:
    """The issue's M2 input: PKG-INFO, then ``members`` empty members named "a", in 2 MiB or so."""
    head = gzip_member(tar_file("tarbomb-1.0/PKG-INFO", PKG_INFO))
    body = gzip_member(tar_header(name) * chunk, 9)
    assert members % chunk == 0
    return head + body * (members // chunk) + gzip_member(tar_end())


def zeros(size: int, piece: int = 64 * MIB) -> bytes:
    """``size`` inflated bytes of zeros (a multiple of ``piece``), as repeated gzip members."""
    assert size % piece == 0
    return zeros_member(piece) * (size // piece)


# Zip ------------------------------------------------------------------------------------------------


@dataclass
class Entry:
    name: str
    data: bytes = b""
    method: int = 8  # deflated
    flags: int = 0x800  # UTF-8 name
    size: int | None = None  # what the directory claims; default: the real size
    crc: int | None = None


@dataclass
class RawZip:
    """A zip written record by record: each field can lie."""

    entries: list[Entry] = field(default_factory=list)
    comment: bytes = b""
    prefix: bytes = b""  # bytes before the first local header
    gap: bytes = b""  # bytes between the central directory and its end record
    trailer: bytes = b""  # bytes after the end record and its comment
    claimed_count: int | None = None
    claimed_directory_size: int | None = None
    zip64: bool = False

    def build(self) -> bytes:
        out = io.BytesIO()
        out.write(self.prefix)
        directory = []
        for entry in self.entries:
            raw = entry.name.encode("utf-8", "surrogateescape")
            payload = entry.data if entry.method == 0 else _deflate(entry.data)
            crc = zlib.crc32(entry.data) if entry.crc is None else entry.crc
            size = len(entry.data) if entry.size is None else entry.size
            offset = out.tell()
            out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, entry.flags, entry.method, 0, 0x21,
                                  crc, len(payload), size, len(raw), 0) + raw + payload)
            directory.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, entry.flags, entry.method,
                                         0, 0x21, crc, len(payload), size, len(raw), 0, 0, 0, 0, 0, offset) + raw)
        start = out.tell()
        out.write(b"".join(directory))
        size = out.tell() - start
        out.write(self.gap)
        count = len(self.entries) if self.claimed_count is None else self.claimed_count
        size = size if self.claimed_directory_size is None else self.claimed_directory_size
        if self.zip64:
            record_at = out.tell()
            out.write(struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, start))
            out.write(struct.pack("<4sIQI", b"PK\x06\x07", 0, record_at, 1))
            out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF,
                                  len(self.comment)))
        else:
            out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
                                  size, start, len(self.comment)))
        out.write(self.comment + self.trailer)
        return out.getvalue()


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


METADATA = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n\n"


def wheel(*extra: Entry, metadata: Entry | None = None, **options: object) -> RawZip:
    """A minimal wheel of demo 1.0 (METADATA and WHEEL), plus ``extra`` entries."""
    entries = [metadata or Entry("demo-1.0.dist-info/METADATA", METADATA),
               Entry("demo-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\nTag: py3-none-any\n"), *extra]
    return RawZip(entries, **options)  # type: ignore[arg-type]
