"""Conditional and range requests on a stored file (RFC 9110 sections 13 and 14): pure.

One function, ``evaluate``, turns a request's validators and Range header into what to send: a
304, a 412, a 416, the whole file or one byte range of it. The caller knows the file's strong
ETag and, when it has it, its modification time; nothing here touches the file.

Single ranges only: a multi-range request (rare; pip and uv ask for one range at a time) and a
malformed Range header are ignored, as RFC 9110 14.2 allows, and get the whole file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)

Status = Literal[200, 206, 304, 412, 416]


@dataclass(frozen=True, slots=True)
class Validators:
    """The request header fields that make it conditional or partial (None: absent)."""

    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None
    if_unmodified_since: str | None = None
    if_range: str | None = None
    range: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What to send: ``status`` and, for 200 and 206, the bytes ``offset`` to ``offset + count``
    of a file of ``size`` bytes (for 416, ``size`` is what the Content-Range names)."""

    status: Status
    offset: int = 0
    count: int = 0
    size: int = 0

    @property
    def content_range(self) -> str | None:
        """The Content-Range header of a 206 or 416, else None."""
        if self.status == 206:
            return f"bytes {self.offset}-{self.offset + self.count - 1}/{self.size}"
        if self.status == 416:
            return f"bytes */{self.size}"
        return None


def strong_etag(token: str) -> str:
    """The strong entity tag for ``token`` (hex digits, ``-``), quoted as RFC 9110 8.8.3 writes it."""
    return f'"{token}"'


def stat_version(size: int, mtime_ns: int) -> str:
    """The version of a file known by its stat (size in bytes, modification time in ns): what
    aiohttp's FileResponse made its ETag of, so cached files keep the ETags they had."""
    return f"{mtime_ns:x}-{size:x}"


def tags_match(header: str | None, etag: str, *, weak: bool) -> bool:
    """Whether a list of entity tags (If-Match, If-None-Match) names ``etag`` or is ``*``.
    ``weak``: the weak comparison (If-None-Match), where ``W/"x"`` names ``"x"``; else the strong one."""
    if not header:
        return False
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            if weak and tag[2:] == etag:
                return True
        elif tag == etag:
            return True
    return False


def http_date(value: str | None) -> float | None:
    """An HTTP-date (RFC 9110 5.6.7) as unix seconds; None when absent or not a date."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | Literal[False]:
    """One byte range of a ``size``-byte file as (offset, count); None when ``header`` asks for no
    range this server serves (absent, malformed, another unit, several ranges): the whole file;
    False when it is one valid range that no byte of the file satisfies (416)."""
    match = _RANGE.match(header) if header else None
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # bytes=-N: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return False
        return max(0, size - suffix), min(suffix, size)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored (RFC 9110 14.1.1)
    if start >= size:
        return False
    end = min(int(last), size - 1) if last else size - 1
    return start, end - start + 1


def evaluate(request: Validators, etag: str, modified: float | None, size: int) -> Answer:
    """What to answer a GET or HEAD of a file whose strong ETag is ``etag``, modified at
    ``modified`` (unix seconds, None when unknown) and ``size`` bytes long.

    Preconditions in RFC 9110 13.2.2's order: If-Match (strong), else If-Unmodified-Since, fail
    with 412; If-None-Match (weak), else If-Modified-Since, answer 304; then Range, applied only
    when If-Range (an ETag compared strongly, or the exact Last-Modified date) still holds.
    """
    if request.if_match is not None:
        if not tags_match(request.if_match, etag, weak=False):
            return Answer(412)
    elif modified is not None and (limit := http_date(request.if_unmodified_since)) is not None:
        if int(modified) > limit:
            return Answer(412)
    if request.if_none_match is not None:
        if tags_match(request.if_none_match, etag, weak=True):
            return Answer(304)
    elif modified is not None and (since := http_date(request.if_modified_since)) is not None:
        if int(modified) <= since:
            return Answer(304)
    whole = Answer(200, 0, size, size)
    if request.range is None or not _if_range_holds(request.if_range, etag, modified):
        return whole
    wanted = byte_range(request.range, size)
    if wanted is None:
        return whole
    if wanted is False:
        return Answer(416, size=size)
    return Answer(206, wanted[0], wanted[1], size)


def _if_range_holds(if_range: str | None, etag: str, modified: float | None) -> bool:
    """RFC 9110 13.1.5: no If-Range, or a strong ETag equal to ours, or exactly our Last-Modified."""
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):
        return if_range == etag
    moment = http_date(if_range)
    return moment is not None and modified is not None and int(modified) == moment
