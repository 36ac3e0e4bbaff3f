"""Reading upstream's answers: pages, ranges and file bodies, bounded in size and pace, with
aiohttp's errors turned into the domain's (UpstreamTimeout, UpstreamUnavailable) and URLs
masked for logs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import aiohttp
from yarl import URL

from proxy.core.errors import InvalidUpstreamResponse, UpstreamTimeout, UpstreamUnavailable


@dataclass(frozen=True, slots=True)
class PageAnswer:
    """Upstream's answer to a page request: 200 with a body, 304, or 404."""

    status: int
    url: str = ""
    body: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class RangeAnswer:
    """Upstream's 206 answer: the bytes of the range, and the whole file's size."""

    body: bytes
    total_size: int


def content_range_total(value: str) -> int | None:
    """The complete length from ``Content-Range: bytes A-B/TOTAL`` (RFC 9110 14.4), or None."""
    unit, _, rest = value.strip().partition(" ")
    _, _, total = rest.partition("/")
    return int(total) if unit.lower() == "bytes" and total.isdigit() else None


def masked(url: URL) -> str:
    """The URL for logs: never a password, never a query string (signed URLs carry secrets)."""
    try:
        shown = url.with_query(None).with_fragment(None)
        return str(shown.with_password("***") if url.password else shown)
    except ValueError:  # not a URL yarl can rebuild (``data:``): only its scheme is told
        return f"{url.scheme}:…"


def redirect_target(url: URL, location: str) -> URL:
    """Where a redirect from ``url`` leads (RFC 9110 10.2.2: relative to ``url``); a Location
    yarl cannot read (``http://[::1``, a port out of range) is InvalidUpstreamResponse."""
    try:
        return url.join(URL(location))
    except (ValueError, TypeError) as exc:
        raise InvalidUpstreamResponse(f"upstream redirected {masked(url)} to an unreadable URL: {exc}") from None


async def page_answer(response: aiohttp.ClientResponse, max_bytes: int) -> PageAnswer:
    if response.status in (404, 410):
        return PageAnswer(404, str(response.url))
    if response.status == 304:
        return PageAnswer(304, str(response.url), etag=response.headers.get("ETag"),
                          last_modified=response.headers.get("Last-Modified"))
    if response.status != 200:
        raise InvalidUpstreamResponse(f"upstream answered {response.status} for {masked(response.url)}")
    if response.content_length is not None and response.content_length > max_bytes:
        raise InvalidUpstreamResponse(f"upstream page {masked(response.url)} is too large")
    body = bytearray()
    async for chunk in response.content.iter_chunked(256 * 1024):
        body += chunk
        if len(body) > max_bytes:
            raise InvalidUpstreamResponse(f"upstream page {masked(response.url)} is too large")
    return PageAnswer(
        200, str(response.url), bytes(body), response.headers.get("Content-Type", ""),
        response.headers.get("ETag"), response.headers.get("Last-Modified"),
    )


class RateGuard:
    """Abandons a response body that arrives slower than ``rate`` bytes/s, judged over each
    ``window`` seconds (the idle read timeout catches silence; this catches a trickle). The
    reader then gets UpstreamTimeout; no rate (None or 0) means no guard."""

    def __init__(self, response: aiohttp.ClientResponse, rate: int | None, window: float) -> None:
        self._content = response.content
        self._quota = (rate or 0) * window
        self._window = window
        self._seen = self._content.total_bytes
        self._handle: asyncio.TimerHandle | None = None
        if self._quota:
            self._handle = asyncio.get_running_loop().call_later(window, self._check)

    def _check(self) -> None:
        received = self._content.total_bytes - self._seen
        if self._content.is_eof() or self._content.exception() is not None:
            return
        if received < self._quota:
            self._content.set_exception(UpstreamTimeout(
                f"upstream sent {received} bytes in {self._window:g} s, slower than download_min_rate"))
            return
        self._seen = self._content.total_bytes
        self._handle = asyncio.get_running_loop().call_later(self._window, self._check)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


@contextmanager
def mapped_errors(url: URL) -> Iterator[None]:
    try:
        yield
    except asyncio.TimeoutError:
        raise UpstreamTimeout(f"upstream timed out: {masked(url)}") from None
    except aiohttp.ClientError as exc:
        raise UpstreamUnavailable(f"upstream failed on {masked(url)}: {exc}") from None
