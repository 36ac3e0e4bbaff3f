"""Core metadata (PEP 658) for every upstream wheel, also when upstream offers none.

PyPI serves ``<wheel>.metadata`` for every wheel; devpi, Nexus, most mirrors and HTML-only
upstreams do not, and without it ``warm`` cannot follow dependencies and installers must fetch
whole wheels to resolve. So this server offers the file itself (``core-metadata: true`` on its
pages, see ``render.proxied_index_page``) and makes it, in order of preference:

1. from the cached wheel, when it is cached (verified against the listing's hash);
2. from a few byte ranges of the upstream wheel (its zip tail and the METADATA member), as
   uv's lazy wheel does: provisional until the wheel itself is fetched;
3. by downloading the whole wheel (verified) when upstream does not answer ranges usefully.

Whenever a wheel is downloaded and verified, its METADATA is extracted again and replaces a
provisional copy that differs (``wheel_metadata_mismatch`` is logged): what is kept is always
what the verified wheel holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, TypeVar

import structlog
from yarl import URL

from proxy.core import lazywheel
from proxy.core.errors import IntegrityError, InvalidUpstreamResponse, ProxyError, UpstreamUnavailable
from proxy.core.flights import SingleFlight
from proxy.core.lazywheel import LazyWheelError, Span
from proxy.core.names import WHEEL
from proxy.core.urls import METADATA_SUFFIX
from proxy.storage.distributions import extract_metadata
from proxy.storage.upstream_files import FileCache
from proxy.upstream.client import Upstream
from proxy.upstream.downloads import Downloader, FileSpec

T = TypeVar("T")
log = structlog.get_logger(__name__)


class WheelMetadata:
    """Makes ``<wheel>.metadata`` files in the file cache; single-flight per file."""

    def __init__(self, upstream: Upstream, cache: FileCache, executor: Executor) -> None:
        self._upstream = upstream
        self._cache = cache
        self._executor = executor
        self._flights = SingleFlight()
        self._no_ranges: set[URL] = set()  # origins that answered a Range request with the whole file
        self.downloader: Downloader | None = None  # set once built (it calls ``committed`` back)

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def close(self) -> None:
        await self._flights.close()

    async def path(self, spec: FileSpec) -> Path:
        """The cached metadata file ``spec`` describes (``spec.metadata_of`` is its wheel), made now
        if needed. UpstreamError subclasses when neither ranges nor a download can give it."""
        wheel = spec.metadata_of
        assert wheel is not None
        return await self._flights.run((spec.project, spec.filename), lambda: self._make(spec, wheel))

    async def _make(self, spec: FileSpec, wheel: FileSpec) -> Path:
        data: bytes | None = None
        if self._cache.cached_size(wheel.project, wheel.filename) is not None:
            data, source = await self._from_cached_wheel(wheel), "cached_wheel"
        if data is None:
            data, source = await self._from_ranges(wheel), "ranges"
            if data is None:
                data, source = await self._from_download(wheel), "download"
        path = await self._keep(spec.project, spec.filename, data)
        log.info("wheel_metadata_made", project=spec.project, filename=wheel.filename, source=source,
                 bytes=len(data))
        return path

    async def _keep(self, project: str, filename: str, data: bytes) -> Path:
        """Store a metadata file in the cache, counted (room made for it) before it lands."""
        await self._cache.usage.admit((project, filename), len(data))
        try:
            return await self._run(self._cache.store, project, filename, data)
        except BaseException:
            await asyncio.shield(self._cache.usage.forget((project, filename)))
            raise

    async def _from_cached_wheel(self, wheel: FileSpec) -> bytes | None:
        """None when the wheel is not cached after all (evicted by another process meanwhile)."""
        path = self._cache.path(wheel.project, wheel.filename)
        try:
            return await self._run(extract_metadata, path, WHEEL)
        except FileNotFoundError:
            return None
        except ProxyError as exc:  # a verified wheel without a readable METADATA
            raise InvalidUpstreamResponse(f"{wheel.filename} has no readable core metadata: {exc}") from None

    async def _from_ranges(self, wheel: FileSpec) -> bytes | None:
        """METADATA from byte ranges; None when upstream or the archive do not allow it."""
        origin = URL(wheel.url, encoded=True).origin()
        if origin in self._no_ranges:
            return None

        async def tail(size: int) -> tuple[bytes, int]:
            answer = await self._upstream.read_range(wheel.url, f"bytes=-{size}", size)
            if answer is None:
                self._no_ranges.add(origin)
                raise LazyWheelError("upstream ignores Range")
            if wheel.size is not None and answer.total_size != wheel.size:
                raise IntegrityError(f"{wheel.filename}: upstream has {answer.total_size} bytes, listed {wheel.size}")
            return answer.body, answer.total_size

        async def fetch(span: Span) -> bytes:
            answer = await self._upstream.read_range(wheel.url, f"bytes={span.start}-{span.end - 1}",
                                                     span.end - span.start)
            if answer is None:
                raise LazyWheelError("upstream ignores Range")
            return answer.body

        try:
            return await lazywheel.read_metadata(tail, fetch)
        except (LazyWheelError, InvalidUpstreamResponse) as exc:
            log.info("wheel_metadata_by_download", project=wheel.project, filename=wheel.filename,
                     reason=str(exc))
            return None

    async def _from_download(self, wheel: FileSpec) -> bytes:
        assert self.downloader is not None
        download = await self.downloader.fetch(wheel)
        path = await download.result
        try:
            return await self._run(extract_metadata, path, WHEEL)
        except FileNotFoundError:  # evicted by another process the moment it was committed
            raise UpstreamUnavailable(f"{wheel.filename} left the cache before its metadata was read") from None
        except ProxyError as exc:
            raise InvalidUpstreamResponse(f"{wheel.filename} has no readable core metadata: {exc}") from None

    async def committed(self, spec: FileSpec, path: Path) -> None:
        """Downloader hook: a verified wheel listed without metadata is in the cache; keep what
        its METADATA says, replacing a provisional copy made from ranges that differs."""
        if not spec.derive_metadata:
            return
        filename = spec.filename + METADATA_SUFFIX
        try:
            data = await self._run(extract_metadata, path, WHEEL)
            kept = await self._run(self._cache.read, spec.project, filename)
            if kept == data:
                return
            if kept is not None:
                log.error("wheel_metadata_mismatch", project=spec.project, filename=spec.filename,
                          detail="metadata read by ranges differs from the verified wheel's; replaced")
            await self._keep(spec.project, filename, data)
        except (ProxyError, OSError) as exc:  # the wheel itself is fine and served; only metadata is missing
            log.warning("wheel_metadata_failed", project=spec.project, filename=spec.filename, error=str(exc))
