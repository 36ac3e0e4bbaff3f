"""A wheel's METADATA read from byte ranges (STANDARDS D3: what uv's and pip's lazy wheels do)."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from proxy.core.lazywheel import MAX_METADATA_BYTES, TAIL_BYTES, LazyWheelError, Span, read_metadata
from tests.builders import Dist

DIST = Dist("demo", "1.0", summary="Café for Jürgen", requires_dist=["dep>=2"])


class Ranges:
    """Serves byte ranges of one archive and remembers what was asked."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.asked: list[Span] = []

    async def tail(self, size: int) -> tuple[bytes, int]:
        start = max(0, len(self.blob) - size)
        self.asked.append(Span(start, len(self.blob)))
        return self.blob[start:], len(self.blob)

    async def fetch(self, span: Span) -> bytes:
        self.asked.append(span)
        return self.blob[span.start:span.end]

    async def read(self) -> bytes:
        return await read_metadata(self.tail, self.fetch)

    @property
    def bytes_read(self) -> int:
        return sum(min(s.end, len(self.blob)) - s.start for s in self.asked)


def wheel(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED, comment: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.comment = comment
    return buffer.getvalue()


def padded_wheel(padding: int, **kwargs: object) -> bytes:
    """A wheel whose METADATA sits before ``padding`` bytes of incompressible payload."""
    return wheel({"demo-1.0.dist-info/METADATA": DIST.metadata(), "demo/blob.bin": _noise(padding)}, **kwargs)


def _noise(size: int) -> bytes:
    state, out = 12345, bytearray()
    while len(out) < size:
        state = (state * 1103515245 + 12345) & 0xFFFFFFFF
        out += state.to_bytes(4, "little")
    return bytes(out[:size])


async def test_a_small_wheel_is_read_in_one_request() -> None:
    ranges = Ranges(DIST.wheel())
    assert await ranges.read() == DIST.metadata()
    assert len(ranges.asked) == 1


async def test_a_large_wheel_costs_the_tail_and_the_member_not_the_whole_file() -> None:
    blob = padded_wheel(8 * 1024**2)
    ranges = Ranges(blob)
    assert await ranges.read() == DIST.metadata()
    assert len(ranges.asked) == 2
    assert ranges.bytes_read < TAIL_BYTES + len(DIST.metadata()) + 4096


async def test_a_central_directory_larger_than_the_tail_is_fetched_by_its_own_range() -> None:
    members = {f"demo/m{i:05d}_{'x' * 60}.py": b"" for i in range(3000)}
    members["demo-1.0.dist-info/METADATA"] = DIST.metadata()
    blob = wheel(members)
    ranges = Ranges(blob)
    assert await ranges.read() == DIST.metadata()
    assert len(ranges.asked) == 3


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
async def test_stored_and_deflated_members_and_an_archive_comment(compression: int) -> None:
    blob = padded_wheel(300_000, compression=compression, comment=b"c" * 65535)
    assert await Ranges(blob).read() == DIST.metadata()


async def test_non_ascii_metadata_comes_back_byte_for_byte() -> None:
    blob = DIST.wheel()
    assert "Jürgen".encode() in await Ranges(blob).read()


@pytest.mark.parametrize(("members", "problem"), [
    ({"demo/__init__.py": b""}, "0 top-level"),
    ({"a-1.dist-info/METADATA": b"x", "b-1.dist-info/METADATA": b"y"}, "2 top-level"),
    ({"demo/inner-1.dist-info/METADATA": b"x"}, "0 top-level"),  # not at the top
])
async def test_an_archive_without_exactly_one_metadata_is_refused(members: dict[str, bytes], problem: str) -> None:
    blob = wheel(members)
    with pytest.raises(LazyWheelError, match=problem):
        await Ranges(blob).read()


async def test_not_a_zip_is_refused() -> None:
    with pytest.raises(LazyWheelError, match="not a zip"):
        await Ranges(b"\0" * 1000).read()


async def test_a_zip64_end_record_is_left_to_the_fallback() -> None:
    blob = bytearray(DIST.wheel())
    eocd = blob.rfind(b"PK\x05\x06")
    struct.pack_into("<H", blob, eocd + 10, 0xFFFF)  # total entries: "see the ZIP64 record"
    with pytest.raises(LazyWheelError, match="ZIP64"):
        await Ranges(bytes(blob)).read()


async def test_a_metadata_that_does_not_match_its_crc_is_refused() -> None:
    blob = bytearray(wheel({"demo-1.0.dist-info/METADATA": DIST.metadata()}, compression=zipfile.ZIP_STORED))
    at = blob.find(b"Summary: ")
    blob[at] ^= 0x20
    with pytest.raises(LazyWheelError, match="CRC-32"):
        await Ranges(bytes(blob)).read()


async def test_a_metadata_announced_over_the_limit_is_not_read() -> None:
    blob = bytearray(wheel({"demo-1.0.dist-info/METADATA": DIST.metadata()}, compression=zipfile.ZIP_STORED))
    central = blob.rfind(b"PK\x01\x02")
    struct.pack_into("<I", blob, central + 24, MAX_METADATA_BYTES + 1)  # uncompressed size
    ranges = Ranges(bytes(blob))
    with pytest.raises(LazyWheelError, match="over the limit"):
        await ranges.read()
    assert len(ranges.asked) == 1


async def test_a_deflate_bomb_is_not_inflated_beyond_the_announced_size() -> None:
    bomb = b"\0" * (MAX_METADATA_BYTES * 4)
    blob = bytearray(wheel({"demo-1.0.dist-info/METADATA": bomb}))
    central = blob.rfind(b"PK\x01\x02")
    struct.pack_into("<I", blob, central + 24, 100)  # claims 100 bytes
    with pytest.raises(LazyWheelError, match="size and CRC-32"):
        await Ranges(bytes(blob)).read()
