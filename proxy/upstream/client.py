"""The upstream index over HTTP: what is asked of it, retried and redirected how, with which
credentials. Reading its answers is ``proxy.upstream.responses``; the session and the rules it
connects by are ``proxy.upstream.session``. (With them, the only user of aiohttp's client in
the package.)"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import aiohttp
import structlog
from yarl import URL

from proxy.config import UpstreamSettings
from proxy.core.errors import InvalidUpstreamResponse, UpstreamRefused, UpstreamTimeout, UpstreamUnavailable
from proxy.upstream.health import CircuitBreaker, UpstreamHealth
from proxy.upstream.responses import (
    PageAnswer,
    RangeAnswer,
    RateGuard,
    content_range_total,
    mapped_errors,
    masked,
    page_answer,
    redirect_target,
)
from proxy.upstream.session import file_policy, new_session

log = structlog.get_logger(__name__)
T = TypeVar("T")

# What we ask upstream for: PEP 691 JSON first, PEP 503 HTML from upstreams that only speak that.
PAGE_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
)
MAX_PAGE_BYTES = 64 * 1024**2
MAX_PROJECT_LIST_BYTES = 512 * 1024**2
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_RETRY_PAUSE = 0.2  # seconds before the first retry; doubled for each next one
_RATE_WINDOW_S = 30.0  # the download rate's window when read_timeout is 0 (no idle timeout)


class Upstream:
    """Fetches pages (with revalidation) and streams files from the configured upstream index.

    No ``raise_for_status``: 304 and 404 are normal answers here. Connection errors and 5xx are
    retried, then raised as UpstreamUnavailable; timeouts and deadlines as UpstreamTimeout.
    Every wait is bounded: the connect and idle read timeouts, a total deadline per page, and a
    minimum rate for file bodies (a trickle of bytes never trips an idle timeout).
    """

    def __init__(self, settings: UpstreamSettings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self.base = URL(settings.url.rstrip("/") + "/")
        self._origin = self.base.origin()
        self._policy = file_policy(settings)
        self._authorization: str | None = None
        self.health = UpstreamHealth(breaker=CircuitBreaker(settings.breaker_threshold))
        if settings.username or settings.password:
            token = base64.b64encode(f"{settings.username}:{settings.password}".encode()).decode()
            self._authorization = f"Basic {token}"

    @staticmethod
    def new_session(settings: UpstreamSettings) -> aiohttp.ClientSession:
        """The one client session (``proxy.upstream.session.new_session``)."""
        return new_session(settings)

    def project_url(self, name: str) -> URL:
        return self.base / name / ""

    async def fetch_page(self, url: URL, etag: str | None = None, last_modified: str | None = None, *,
                         max_bytes: int = MAX_PAGE_BYTES, retries: int | None = None,
                         deadline: float | None = None) -> PageAnswer:
        """GET a simple-API page, conditionally when validators are given; 200, 304 or 404.

        ``retries`` overrides the configured count; ``deadline`` (seconds, 0 or None: none) bounds
        the whole fetch, retries and body included, so a trickling upstream cannot hold it
        forever: past it, UpstreamTimeout. The caller counts the outcome (``health.attempt``).
        """
        headers = {"Accept": PAGE_ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        fetch = self._retry(lambda: self._fetch_page_once(url, headers, max_bytes), retries)
        if not deadline:
            return await fetch
        try:
            return await asyncio.wait_for(fetch, deadline)
        except asyncio.TimeoutError:  # wait_for's own: inner timeouts arrive as UpstreamTimeout
            raise UpstreamTimeout(f"upstream did not send {masked(url)} within {deadline:g} s") from None

    async def _fetch_page_once(self, url: URL, headers: dict[str, str], max_bytes: int) -> PageAnswer:
        started = time.monotonic()
        response = await self._open(url, headers, same_origin=True, raw=False)
        try:
            with mapped_errors(url):
                answer = await page_answer(response, max_bytes)
        finally:
            response.release()
        log.info("upstream_fetch", url=masked(url), status=answer.status, bytes=len(answer.body),
                 ms=round((time.monotonic() - started) * 1000, 1))
        return answer

    @asynccontextmanager
    async def open_file(self, url: str) -> AsyncIterator[aiohttp.ClientResponse]:
        """A 200 response for a file URL taken from a parsed listing, its body not yet read.

        Redirects to other hosts are followed (files live on CDNs, G2); the bytes are verified
        against the listing's hash by the caller, and credentials never leave the upstream's host.
        Errors while the caller reads the body come out as UpstreamUnavailable/UpstreamTimeout.
        """
        target = URL(url, encoded=True)
        headers = {"Accept-Encoding": "identity"}  # the stored bytes must be the listed bytes
        response = await self._retry(lambda: self._open(target, headers, same_origin=False, raw=True))
        try:
            if response.status in (404, 410):
                raise InvalidUpstreamResponse(f"upstream has no file at {masked(response.url)}")
            if response.status != 200:
                raise InvalidUpstreamResponse(f"upstream answered {response.status} for {masked(response.url)}")
            guard = RateGuard(response, self._settings.download_min_rate,
                               self._settings.read_timeout or _RATE_WINDOW_S)
            try:
                with mapped_errors(target):
                    yield response
            finally:
                guard.cancel()
        finally:
            response.release()

    async def read_range(self, url: str, range_header: str, max_bytes: int) -> RangeAnswer | None:
        """One byte range of a file URL from a parsed listing (``bytes=-N`` or ``bytes=A-B``).

        None when upstream ignores ranges (answers 200 with the whole file: nothing more is read);
        InvalidUpstreamResponse for any other answer or a malformed Content-Range. Credentials
        and redirects are handled as in ``open_file``. Bounded like a page: at most ``max_bytes``,
        within ``page_deadline`` (UpstreamTimeout past it), so a trickling upstream cannot hold it.
        """
        deadline = self._settings.page_deadline
        reading = self._read_range(URL(url, encoded=True), range_header, max_bytes)
        if not deadline:
            return await reading
        try:
            return await asyncio.wait_for(reading, deadline)
        except asyncio.TimeoutError:  # wait_for's own: inner timeouts arrive as UpstreamTimeout
            raise UpstreamTimeout(f"upstream did not send a range of {masked(URL(url, encoded=True))} "
                                  f"within {deadline:g} s") from None

    async def _read_range(self, target: URL, range_header: str, max_bytes: int) -> RangeAnswer | None:
        headers = {"Accept-Encoding": "identity", "Range": range_header}
        response = await self._retry(lambda: self._open(target, headers, same_origin=False, raw=True))
        try:
            if response.status == 200:
                return None
            if response.status != 206:
                raise InvalidUpstreamResponse(f"upstream answered {response.status} to a range of {masked(response.url)}")
            total = content_range_total(response.headers.get("Content-Range", ""))
            if total is None:
                raise InvalidUpstreamResponse(f"upstream sent no usable Content-Range for {masked(response.url)}")
            body = bytearray()
            with mapped_errors(target):
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > max_bytes:
                        raise InvalidUpstreamResponse(
                            f"upstream sent more than the range asked of {masked(response.url)}")
            return RangeAnswer(bytes(body), total)
        finally:
            response.release()

    async def _retry(self, attempt: Callable[[], Awaitable[T]], retries: int | None = None) -> T:
        """Retry connection errors and 5xx; a timeout is not retried (the client is waiting)."""
        retries = self._settings.retries if retries is None else retries
        for number in range(retries + 1):
            try:
                return await attempt()
            except UpstreamTimeout:
                raise
            except UpstreamUnavailable as exc:
                if number == retries:
                    raise
                log.warning("upstream_retry", error=str(exc), attempt=number + 1)
                await asyncio.sleep(_RETRY_PAUSE * 2**number)
        raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover

    async def _open(self, url: URL, headers: dict[str, str], *, same_origin: bool,
                    raw: bool) -> aiohttp.ClientResponse:
        """GET following redirects by hand, so credentials go to the upstream's origin only,
        and every URL (the first and each redirect's) is checked before it is asked: on the
        index's origin for pages (``same_origin``), by the file policy for files.

        The caller releases the returned response. 5xx answers are raised as UpstreamUnavailable;
        a URL not allowed as UpstreamRefused (logged, masked), an unreadable redirect, a loop
        or too many as InvalidUpstreamResponse: never retried, nothing asked of that URL.
        """
        for _ in range(MAX_REDIRECTS + 1):
            try:
                self._check(url, same_origin)
                sent = dict(headers)
                if self._authorization and self._policy.is_index_origin(url):
                    sent["Authorization"] = self._authorization
                with mapped_errors(url):
                    response = await self._session.get(
                        url, headers=sent, allow_redirects=False, auto_decompress=not raw
                    )
            except UpstreamRefused as exc:
                log.warning("upstream_fetch_refused", url=masked(url), rule=exc.rule, reason=str(exc))
                raise UpstreamRefused(f"{masked(url)}: {exc}", exc.rule) from None
            location = response.headers.get("Location")
            if response.status in _REDIRECTS and location:
                response.release()
                url = redirect_target(url, location)
                continue
            if response.status >= 500:
                response.release()
                raise UpstreamUnavailable(f"upstream answered {response.status} for {masked(url)}")
            return response
        raise InvalidUpstreamResponse(f"more than {MAX_REDIRECTS} redirects from {masked(url)}")

    def _check(self, url: URL, same_origin: bool) -> None:
        if not same_origin:
            self._policy.check_url(url)
        elif not self._policy.is_index_origin(url):
            raise UpstreamRefused(f"pages are read from the index's origin ({self._origin}) only", "same_origin")
