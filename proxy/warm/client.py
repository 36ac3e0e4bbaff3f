"""Talking to a running proxy for ``warm``: project pages, PEP 658 metadata, and HEAD on files."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

import aiohttp
from packaging.utils import NormalizedName

from proxy.core.errors import ProxyError
from proxy.core.indexpage import IndexFile, IndexPage
from proxy.core.negotiate import JSON_V1
from proxy.core.parse import parse_project_page

# Pages and metadata are small; a HEAD waits while the proxy downloads the whole file, so it has no
# read timeout of its own (the proxy's upstream timeouts end a stalled download with a 502/504).
PAGE_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10)
HEAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)


class WarmError(Exception):
    """A page or metadata file the proxy could not give (status, connection error, bad content)."""


@dataclass(frozen=True, slots=True)
class FileOutcome:
    filename: str
    status: str  # "cached", "fetched" or "failed"
    size: int = 0
    detail: str = ""


class ProxyClient:
    """The proxy's simple API over one session: project pages, metadata files, HEAD on files."""

    def __init__(self, session: aiohttp.ClientSession, server: str, concurrency: int) -> None:
        self._session = session
        self._base = server.rstrip("/")
        self._limit = asyncio.Semaphore(concurrency)

    async def page(self, name: NormalizedName) -> IndexPage | None:
        """The project's page, or None when the proxy knows no such project."""
        url = f"{self._base}/pypi/simple/{name}/"
        async with self._limit:
            try:
                async with self._session.get(url, headers={"Accept": JSON_V1}, timeout=PAGE_TIMEOUT) as response:
                    if response.status == 404:
                        return None
                    if response.status != 200:
                        raise WarmError(f"page of {name}: HTTP {response.status}")
                    body = await response.read()
                    content_type = response.headers.get("Content-Type", "")
                    page_url = str(response.url)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise WarmError(f"page of {name}: {_describe(exc)}") from None
        try:
            return parse_project_page(body, content_type, page_url, name)
        except ProxyError as exc:
            raise WarmError(f"page of {name}: {exc}") from None

    async def metadata(self, file: IndexFile) -> bytes:
        """The file's PEP 658 metadata, checked against the page's hash when it gives one."""
        async with self._limit:
            try:
                async with self._session.get(file.url + ".metadata", timeout=PAGE_TIMEOUT) as response:
                    if response.status != 200:
                        raise WarmError(f"metadata of {file.filename}: HTTP {response.status}")
                    body = await response.read()
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise WarmError(f"metadata of {file.filename}: {_describe(exc)}") from None
        expected = (file.core_metadata or {}).get("sha256")
        if expected and hashlib.sha256(body).hexdigest() != expected:
            raise WarmError(f"metadata of {file.filename}: sha256 differs from the page's")
        return body

    async def head(self, file: IndexFile) -> FileOutcome:
        """HEAD the file: the proxy answers once the file is in its cache (``X-Proxy-Cache``)."""
        async with self._limit:
            try:
                async with self._session.head(file.url, allow_redirects=True, timeout=HEAD_TIMEOUT) as response:
                    if not 200 <= response.status < 300:
                        return FileOutcome(file.filename, "failed", detail=f"HTTP {response.status}")
                    size = response.content_length or file.size or 0
                    miss = response.headers.get("X-Proxy-Cache", "").lower() == "miss"
                    return FileOutcome(file.filename, "fetched" if miss else "cached", size)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                return FileOutcome(file.filename, "failed", detail=_describe(exc))


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
