"""Building a PublicIndex for unit tests, without a server: a real page cache in tmp_path, a real
client session to the fake upstream on loopback, and a clock the test moves by hand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from proxy.config import Settings
from proxy.storage.upstream_pages import PageCache
from proxy.upstream.client import Upstream
from proxy.upstream.health import CircuitBreaker, UpstreamHealth
from proxy.upstream.pages import PublicIndex
from tests.fakeupstream import FakeUpstream
from tests.waiting import until

__all__ = ["Clock", "MakeIndex", "index_for", "list_requests", "page_requests", "settled", "timed", "until"]

MakeIndex = Callable[..., Awaitable[PublicIndex]]


class Clock:
    """Unix seconds that pass only when the test sets ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def index_for(upstream_settings: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[MakeIndex]:
    """A PublicIndex on a real page cache and a real session to the fake upstream; its clock
    (and its breaker's) is the given one."""
    opened: list[tuple[PublicIndex, Upstream, PageCache, ThreadPoolExecutor]] = []
    loop = asyncio.get_running_loop()

    async def make(clock: Clock, pages: str | None = None, **upstream: Any) -> PublicIndex:
        """``pages``: the page cache's directory name, shared by indexes given the same one."""
        settings = upstream_settings(upstream).upstream
        up = Upstream(settings, Upstream.new_session(settings))
        up.health = UpstreamHealth(breaker=CircuitBreaker(settings.breaker_threshold, clock), clock=clock)
        executor = ThreadPoolExecutor(2)
        cache = await loop.run_in_executor(executor, PageCache, tmp_path / (pages or f"pages{len(opened)}"), 2**24)
        index = PublicIndex(up, cache, executor, settings, clock=clock)
        opened.append((index, up, cache, executor))
        return index

    yield make
    for index, up, cache, executor in opened:
        await index.close()
        await up._session.close()
        await loop.run_in_executor(executor, cache.close)
        executor.shutdown()


def page_requests(upstream: FakeUpstream, name: str = "demo") -> int:
    return upstream.requests[f"/simple/{name}/"]


def list_requests(upstream: FakeUpstream) -> int:
    return upstream.requests["/simple/"]


async def settled(index: PublicIndex, within: float = 5.0) -> None:
    """Await every refresh running in the background (stale-while-revalidate) and every cache write
    they started: afterwards the index has done all it was going to do (no sleep, no poll)."""
    async def drained() -> None:
        while index._flights._tasks or index._writes:
            await asyncio.gather(*index._flights._tasks.values(), *index._writes, return_exceptions=True)

    try:
        await asyncio.wait_for(drained(), within)
    except asyncio.TimeoutError:
        raise AssertionError(f"background refreshes still running after {within} s") from None


async def timed(work: Awaitable[Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = await work
    return result, time.monotonic() - started
