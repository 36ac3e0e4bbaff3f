"""PublicIndex's freshness rules, stale-while-revalidate bound and circuit breaker (issue 11), with an
injected clock for everything that is a rule about time, against the real FakeUpstream on loopback.

Waits that are real (how long a client waits for a slow upstream) use small real bounds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from proxy.config import Settings
from proxy.core.errors import ProjectNotFound, UpstreamCircuitOpen, UpstreamUnavailable
from proxy.storage.upstream_pages import PageCache
from proxy.upstream.client import Upstream
from proxy.upstream.health import BreakerState, CircuitBreaker, UpstreamHealth
from proxy.upstream.pages import CacheState, PublicIndex
from tests.builders import Dist
from tests.fakeupstream import FakeUpstream

MakeIndex = Callable[..., Awaitable[PublicIndex]]


class Clock:
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


async def timed(work: Awaitable[Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = await work
    return result, time.monotonic() - started


async def until(condition: Callable[[], Awaitable[bool] | bool], within: float = 3.0) -> None:
    """Poll ``condition`` until it holds (background work landing), failing after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        outcome = condition()
        if await outcome if isinstance(outcome, Awaitable) else outcome:
            return
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.02)


# Freshness -----------------------------------------------------------------------------------------


async def test_a_page_is_fresh_for_fresh_for_then_revalidated(index_for: MakeIndex,
                                                              fake_upstream: FakeUpstream) -> None:
    """STANDARDS G3 / D2: within fresh_for upstream is not asked; after it, If-None-Match."""
    clock = Clock()
    index = await index_for(clock, fresh_for=60, stale_timeout=5)
    assert (await index.lookup("demo"))[1] is CacheState.MISS
    clock.now = 1059.9
    assert (await index.lookup("demo"))[1] is CacheState.HIT
    assert page_requests(fake_upstream) == 1
    clock.now = 1060.0
    assert (await index.lookup("demo"))[1] is CacheState.REVALIDATED
    assert page_requests(fake_upstream) == 2 and "If-None-Match" in fake_upstream.seen_headers[-1]
    clock.now = 1119.9  # the 304 renewed it
    assert (await index.lookup("demo"))[1] is CacheState.HIT
    assert page_requests(fake_upstream) == 2


async def test_upstreams_404_is_remembered_for_not_found_for(index_for: MakeIndex,
                                                              fake_upstream: FakeUpstream) -> None:
    clock = Clock()
    index = await index_for(clock, not_found_for=30)
    for now, asked in ((1000.0, 1), (1029.9, 1), (1030.0, 2)):
        clock.now = now
        with pytest.raises(ProjectNotFound):
            await index.lookup("nope")
        assert page_requests(fake_upstream, "nope") == asked, now


async def test_after_a_failure_upstream_is_not_asked_for_retry_after_error(index_for: MakeIndex,
                                                                           fake_upstream: FakeUpstream) -> None:
    """Also: once a request failed, the next ones do not wait for upstream (their refresh runs in
    the background); a refresh that succeeds lands in the cache."""
    clock = Clock()
    index = await index_for(clock, fresh_for=10, retry_after_error=30, retries=0)
    await index.lookup("demo")
    fake_upstream.bad.page_status = 503
    for now, asked in ((1010.0, 2), (1039.9, 2), (1040.0, 3)):
        clock.now = now
        assert (await index.lookup("demo"))[1] is CacheState.STALE
        await until(lambda: page_requests(fake_upstream) == asked)
        assert page_requests(fake_upstream) == asked, now
    fake_upstream.bad.page_status = None
    clock.now = 1070.0
    assert (await index.lookup("demo"))[1] is CacheState.STALE  # upstream is not known to answer

    async def landed() -> bool:
        return (await index.lookup("demo"))[1] is CacheState.HIT

    await until(landed)
    assert (await index.lookup("demo"))[0].fetched_at == 1070.0


# The stale bound -------------------------------------------------------------------------------------


async def test_a_slow_revalidation_is_cut_short_and_lands_in_the_cache_later(
        index_for: MakeIndex, fake_upstream: FakeUpstream) -> None:
    """Stale-while-revalidate: the client waits stale_timeout, then gets the cached copy; the one
    refresh (shared by later requests) goes on and its answer becomes the cached page."""
    clock = Clock()
    index = await index_for(clock, fresh_for=10, stale_timeout=0.6)
    first, _ = await index.lookup("demo")
    fake_upstream.add(Dist("demo", "1.1"))
    fake_upstream.bad.delay = 1.2
    clock.now = 1010.0
    (record, state), waited = await timed(index.lookup("demo"))
    assert state is CacheState.STALE and record == first
    assert 0.6 <= waited < 1.1
    (record, state), waited = await timed(index.lookup("demo"))  # the refresh is overdue: no wait
    assert state is CacheState.STALE and waited < 0.3

    async def landed() -> bool:
        return (await index.lookup("demo"))[1] is CacheState.HIT

    await until(landed)
    record, _ = await index.lookup("demo")
    assert record.page is not None and record.page.versions == ("1.0", "1.1")
    assert record.fetched_at == 1010.0
    assert page_requests(fake_upstream) == 2, "every request joined the one refresh"


async def test_while_one_refresh_is_overdue_other_stale_pages_are_answered_at_once(
        index_for: MakeIndex, fake_upstream: FakeUpstream) -> None:
    """A hanging upstream costs one stale_timeout, not one per project."""
    clock = Clock()
    index = await index_for(clock, fresh_for=10, stale_timeout=0.6, page_deadline=5)
    await index.lookup("demo")
    await index.lookup("dep")
    fake_upstream.bad.page_stall = "hang"
    clock.now = 1010.0
    (_, state), waited = await timed(index.lookup("demo"))
    assert state is CacheState.STALE and 0.6 <= waited < 1.1
    (_, state), waited = await timed(index.lookup("dep"))
    assert state is CacheState.STALE and waited < 0.3
    await until(lambda: page_requests(fake_upstream, "dep") == 2)  # its refresh started all the same


@pytest.mark.parametrize("before", ["nothing", "a failure"])
async def test_nobody_waits_for_an_upstream_not_known_to_answer(index_for: MakeIndex, fake_upstream: FakeUpstream,
                                                               before: str) -> None:
    """Before upstream answered in this process (a restart during an outage), or after its last
    request failed, a cached page is served at once and refreshed in the background."""
    clock = Clock()
    first = await index_for(clock, "pages", fresh_for=10, stale_timeout=0.6, retries=0)
    await first.lookup("demo")
    await first.lookup("dep")
    await until(lambda: not first._writes)  # on disk
    # "nothing": a new process on the same cache, as after a restart
    index = await index_for(clock, "pages", fresh_for=10, stale_timeout=0.6, retries=0) if before == "nothing" else first
    clock.now = 1010.0
    if before == "a failure":
        fake_upstream.bad.page_status = 503
        assert (await index.lookup("demo"))[1] is CacheState.STALE
    fake_upstream.bad.page_status = None
    fake_upstream.bad.page_stall = "hang"
    (_, state), waited = await timed(index.lookup("dep"))
    assert state is CacheState.STALE and waited < 0.3
    await until(lambda: page_requests(fake_upstream, "dep") == 2)  # refreshed in the background


async def test_the_project_list_is_served_stale_within_the_bound(index_for: MakeIndex,
                                                                  fake_upstream: FakeUpstream) -> None:
    clock = Clock()
    index = await index_for(clock, list_projects=True, project_list_fresh_for=10, stale_timeout=0.6)
    fresh, state = await index.project_list()
    assert state is CacheState.MISS and fresh is not None and fresh.names == ("demo", "dep")
    fake_upstream.bad.page_stall = "trickle"
    clock.now = 1010.0
    (stale, state), waited = await timed(index.project_list())
    assert (stale, state) == (fresh, CacheState.STALE) and 0.6 <= waited < 1.1


async def test_a_long_project_list_refresh_does_not_make_pages_stop_waiting(
        index_for: MakeIndex, fake_upstream: FakeUpstream) -> None:
    """Upstream's project list is huge (PyPI's: tens of MB): its refresh running past the bound
    says nothing about upstream being slow, so pages are still revalidated while it runs."""
    clock = Clock()
    index = await index_for(clock, list_projects=True, project_list_fresh_for=10, fresh_for=10,
                            stale_timeout=0.6)
    await index.project_list()
    await index.lookup("demo")
    fake_upstream.bad.list_stall = "hang"
    clock.now = 1010.0
    (_, state), waited = await timed(index.project_list())
    assert state is CacheState.STALE and waited >= 0.6
    await asyncio.sleep(0.1)  # time passes: the list's refresh runs well past the bound
    assert (await index.lookup("demo"))[1] is CacheState.REVALIDATED


# The circuit breaker ---------------------------------------------------------------------------------


async def test_breaker_opens_serves_stale_without_asking_fails_cold_at_once_and_a_probe_closes_it(
        index_for: MakeIndex, fake_upstream: FakeUpstream) -> None:
    clock = Clock()
    index = await index_for(clock, fresh_for=10, retry_after_error=0, retries=0, breaker_threshold=2,
                            breaker_probe_every=0.05, stale_timeout=5)
    health = index._health
    await index.lookup("demo")
    await index.lookup("dep")
    fake_upstream.bad.page_status = 503
    clock.now = 1010.0
    for name in ("demo", "dep"):  # failures of different projects add up
        assert (await index.lookup(name))[1] is CacheState.STALE
    await until(lambda: not health.breaker.closed)  # the second one failed in the background
    assert health.breaker.since == 1010.0 and health.breaker.openings == 1
    asked = health.fetches["page"]

    clock.now = 1020.0
    (_, state), waited = await timed(index.lookup("demo"))
    assert state is CacheState.STALE and waited < 0.3
    with pytest.raises(UpstreamCircuitOpen) as failure:
        await index.lookup("never-cached")
    assert failure.value.since == 1010.0 and "503" in str(failure.value.last_error)
    assert "failing since 1970-01-01T00:16:50" in str(failure.value)
    assert health.fetches["page"] == asked, "no page request while open"
    assert page_requests(fake_upstream, "never-cached") == 0

    fake_upstream.bad.page_status = None
    clock.now = 1030.0
    await until(lambda: health.breaker.closed)
    assert health.breaker.since == 1030.0 and health.fetches["probe"] >= 1
    assert (await index.lookup("demo"))[1] is CacheState.REVALIDATED  # the probe's answer: waited for
    fake_upstream.add(Dist("never-cached", "1.0"))
    assert (await index.lookup("never-cached"))[1] is CacheState.MISS


async def test_a_stale_copy_is_revalidated_without_retries_a_cold_page_with_them(
        index_for: MakeIndex, fake_upstream: FakeUpstream) -> None:
    """With a copy to fall back on, retry pauses would only delay the answer (the issue: a refusing
    upstream added ~0.6 s to every page); without one, retries may still save the request."""
    clock = Clock()
    index = await index_for(clock, fresh_for=10, retries=2, breaker_threshold=0)
    await index.lookup("demo")
    fake_upstream.bad.page_status = 503
    clock.now = 1010.0
    (_, state), waited = await timed(index.lookup("demo"))
    assert state is CacheState.STALE and waited < 0.3
    assert page_requests(fake_upstream) == 2
    with pytest.raises(UpstreamUnavailable, match="503"):
        await index.lookup("dep")
    assert page_requests(fake_upstream, "dep") == 3
