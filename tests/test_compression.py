"""Which requests get a page's gzip copy, and when a copy is worth making (issue 11 B7)."""

from __future__ import annotations

import gzip
import os

import pytest

from proxy.core import compression


@pytest.mark.parametrize(("header", "expected"), [
    ("gzip", True),
    ("gzip, deflate", True),  # pip (requests)
    ("gzip, deflate, br", True),
    ("gzip, br, zstd", True),  # uv
    ("GZIP", True),  # codings are case-insensitive (RFC 9110 8.4.1)
    ("x-gzip", True),  # its alias
    ("*", True),  # any coding
    ("br;q=1.0, gzip;q=0.5", True),  # gzip acceptable, br not offered
    ("gzip;q=0.5, identity;q=0.5", True),  # a tie: the smaller one
    ("deflate, *;q=0.1", True),
    (None, False),  # nothing said: the plain bytes every client reads
    ("", False),
    ("identity", False),
    ("br", False),
    ("br, zstd", False),
    ("deflate", False),
    ("gzip;q=0", False),  # "not acceptable"
    ("gzip;q=0.0, *", False),  # the named coding's q wins over *'s
    ("*;q=0", False),
    ("gzip;q=0.4, identity;q=0.9", False),  # plain preferred
    ("gzip;q=oops", False),  # malformed q: the entry is dropped
    ("gzip;q=2", False),  # out of range: dropped
])
def test_accepts_gzip(header: str | None, expected: bool) -> None:
    """RFC 9110 12.5.3, with the Accept-Encoding headers pip and uv really send."""
    assert compression.accepts_gzip(header) is expected


def test_a_copy_is_made_for_bodies_that_gain() -> None:
    body = b'{"files":[' + b'{"filename":"demo-1.0-py3-none-any.whl"},' * 200 + b"]}"
    packed = compression.gzipped(body)
    assert packed is not None and len(packed) < len(body) / 5
    assert gzip.decompress(packed) == body
    assert compression.gzipped(body) == packed, "the same bytes every time: one ETag in every worker"


@pytest.mark.parametrize("body", [
    b"",
    b"x" * (compression.MIN_BYTES - 1),  # fits in a packet either way
    os.urandom(4096),  # does not shrink
], ids=["empty", "tiny", "incompressible"])
def test_no_copy_where_it_does_not_pay(body: bytes) -> None:
    assert compression.gzipped(body) is None
