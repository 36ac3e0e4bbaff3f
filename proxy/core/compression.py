"""Content coding of rendered pages: a gzip copy made once per render, sent to clients that accept
it (RFC 9110 8.4.1, 12.5.3). Pages only: a distribution is always sent as its own bytes (H5)."""

from __future__ import annotations

import gzip
from functools import lru_cache

from proxy.core.negotiate import REMEMBERED, weighted

GZIP = "gzip"
# Below this a page fits in a packet or two either way: compressing it saves the client nothing.
MIN_BYTES = 1024
# zlib's default: within a few per cent of level 9's size at half its time (a 1.5 MB page: 55 ms).
LEVEL = 6


def gzipped(body: bytes) -> bytes | None:
    """``body`` gzip-compressed, or None when it is too small to gain (under ``MIN_BYTES``) or does
    not shrink. The same input gives the same bytes (no timestamp), so every server process makes
    the same copy and the same ETag. Blocking: about 35 ms per MB; run big ones off the loop."""
    if len(body) < MIN_BYTES:
        return None
    packed = gzip.compress(body, compresslevel=LEVEL, mtime=0)
    return packed if len(packed) < len(body) else None


def _codings(header: str) -> dict[str, float]:
    """Content codings with their q-values (the first mention of each counts)."""
    found: dict[str, float] = {}
    for coding, q in weighted(header):
        found.setdefault(coding, q)
    return found


@lru_cache(maxsize=REMEMBERED)  # clients send a few fixed headers: a look-up, not a parse
def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether to send the gzip copy to a request with this Accept-Encoding (RFC 9110 12.5.3).

    ``gzip`` (or its alias ``x-gzip``) with q > 0, else ``*`` with q > 0, and not ranked below an
    explicit ``identity``. ``gzip;q=0`` refuses it. No header, or an empty one: the plain bytes,
    which every client reads (curl without ``--compressed`` too). pip sends ``gzip, deflate``,
    uv ``gzip, br, zstd`` (and so on).
    """
    if not accept_encoding:
        return False
    codings = _codings(accept_encoding)
    for name in (GZIP, "x-gzip", "*"):
        if name in codings:
            q = codings[name]
            return q > 0 and q >= codings.get("identity", 0.0)
    return False
