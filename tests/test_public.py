"""PublicIndex's stale-while-revalidate bound and circuit breaker (issue 11), with an injected clock
for everything that is a rule about time, against the real FakeUpstream on loopback (its freshness
rules: tests/test_public_freshness.py).

Waits that are real (how long a client waits for a slow upstream) use small real bounds.
"""

from __future__ import annotations

import asyncio

import pytest

from proxy.core.errors import UpstreamCircuitOpen, UpstreamUnavailable
from proxy.core.merge import CacheState
from proxy.upstream.health import BreakerState
from tests.builders import Dist
from tests.fakeupstream import FakeUpstream
from tests.publicindex import Clock, MakeIndex, index_for, page_requests, settled, timed, until

__all__ = ["index_for"]  # the fixture, imported for pytest


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
    await settled(index)  # the refresh ends (upstream's delay) and lands
    record, state = await index.lookup("demo")
    assert state is CacheState.HIT
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
    await until(lambda: page_requests(fake_upstream, "dep") == 2, "dep's refresh reaching upstream")


@pytest.mark.parametrize("before", ["nothing", "a failure"])
async def test_nobody_waits_for_an_upstream_not_known_to_answer(index_for: MakeIndex, fake_upstream: FakeUpstream,
                                                               before: str) -> None:
    """Before upstream answered in this process (a restart during an outage), or after its last
    request failed, a cached page is served at once and refreshed in the background."""
    clock = Clock()
    first = await index_for(clock, "pages", fresh_for=10, stale_timeout=0.6, retries=0)
    await first.lookup("demo")
    await first.lookup("dep")
    await settled(first)  # on disk
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
    await until(lambda: page_requests(fake_upstream, "dep") == 2, "dep's background refresh reaching upstream")


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
    assert not index._flights._tasks["projects"].done(), "the list's refresh runs on, past the bound"
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
    await settled(index)  # the second one failed in the background
    assert health.breaker.state is BreakerState.OPEN
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
    assert index._probe is not None
    await asyncio.wait_for(asyncio.shield(index._probe), 3)  # probing ends once an answer closed it
    assert health.breaker.closed
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
