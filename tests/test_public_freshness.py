"""PublicIndex's freshness rules (issue 13): ``fresh_for``, ``not_found_for``, ``retry_after_error``
and ``project_list_fresh_for``, driven by an injected clock, with the exact number of requests
upstream (the real FakeUpstream on loopback) received after each step. No server, no sleep: a
refresh that runs in the background is awaited (``settled``)."""

from __future__ import annotations

import pytest

from proxy.core import render
from proxy.core.errors import ProjectNotFound
from proxy.core.merge import CacheState
from tests.builders import Dist
from tests.fakeupstream import FakeUpstream
from tests.publicindex import Clock, MakeIndex, index_for, list_requests, page_requests, settled

__all__ = ["index_for"]  # the fixture, imported for pytest


# Project pages -------------------------------------------------------------------------------------


async def test_a_page_is_fresh_for_fresh_for_then_revalidated(index_for: MakeIndex,
                                                              fake_upstream: FakeUpstream) -> None:
    """STANDARDS G3 / D2: within fresh_for upstream is not asked; after it, If-None-Match, and
    a 304 keeps the page for another fresh_for."""
    clock = Clock()
    index = await index_for(clock, fresh_for=60, stale_timeout=5)
    first, state = await index.lookup("demo")
    assert state is CacheState.MISS and page_requests(fake_upstream) == 1
    clock.now = 1059.9
    assert (await index.lookup("demo")) == (first, CacheState.HIT)
    assert page_requests(fake_upstream) == 1
    clock.now = 1060.0
    record, state = await index.lookup("demo")
    assert state is CacheState.REVALIDATED and record.fetched_at == 1060.0
    assert record.content_id == first.content_id and record.page == first.page
    assert page_requests(fake_upstream) == 2 and fake_upstream.seen_headers[-1]["If-None-Match"] == first.etag
    clock.now = 1119.9  # the 304 renewed it
    assert (await index.lookup("demo"))[1] is CacheState.HIT
    assert page_requests(fake_upstream) == 2


async def test_a_page_changed_upstream_replaces_the_cached_one_after_fresh_for(
        index_for: MakeIndex, fake_upstream: FakeUpstream) -> None:
    """A 200 to the revalidation is the new page: new content, validators and rendering."""
    clock = Clock()
    index = await index_for(clock, fresh_for=60, stale_timeout=5)
    first, _ = await index.lookup("demo")
    assert first.page is not None
    old_json = render.project_json(render.proxied_index_page(first.page))
    fake_upstream.add(Dist("demo", "1.1"))
    clock.now = 1059.9
    assert (await index.lookup("demo")) == (first, CacheState.HIT), "not asked within fresh_for"
    clock.now = 1060.0
    record, state = await index.lookup("demo")
    assert state is CacheState.MISS and page_requests(fake_upstream) == 2
    assert record.page is not None and record.page.versions == ("1.0", "1.1")
    assert record.fetched_at == 1060.0 and record.etag != first.etag and record.content_id != first.content_id
    new_json = render.project_json(render.proxied_index_page(record.page))
    assert b"demo-1.1" in new_json and b"demo-1.1" not in old_json
    clock.now = 1119.9
    assert (await index.lookup("demo")) == (record, CacheState.HIT)
    assert page_requests(fake_upstream) == 2


async def test_upstreams_404_is_remembered_for_not_found_for_then_asked_again(
        index_for: MakeIndex, fake_upstream: FakeUpstream) -> None:
    clock = Clock()
    index = await index_for(clock, not_found_for=30, fresh_for=600)
    for now, asked in ((1000.0, 1), (1029.9, 1), (1030.0, 2), (1059.9, 2)):
        clock.now = now
        with pytest.raises(ProjectNotFound):
            await index.lookup("nope")
        assert page_requests(fake_upstream, "nope") == asked, now
    fake_upstream.add(Dist("nope", "1.0"))
    clock.now = 1060.0  # the 404 of 1030 has expired: a project published since is found
    record, state = await index.lookup("nope")
    assert state is CacheState.MISS and record.page is not None and record.page.versions == ("1.0",)
    assert page_requests(fake_upstream, "nope") == 3
    clock.now = 1659.9  # a found project is fresh for fresh_for, not not_found_for
    assert (await index.lookup("nope"))[1] is CacheState.HIT
    assert page_requests(fake_upstream, "nope") == 3


async def test_after_a_failure_the_stale_page_is_served_and_upstream_not_asked_for_retry_after_error(
        index_for: MakeIndex, fake_upstream: FakeUpstream) -> None:
    """stale-if-error: the cached page however old, and no request upstream until
    retry_after_error has passed; then one (in the background: upstream is not known to answer),
    whose success lands in the cache."""
    clock = Clock()
    index = await index_for(clock, fresh_for=10, retry_after_error=30, retries=0, stale_timeout=5)
    first, _ = await index.lookup("demo")
    fake_upstream.bad.page_status = 503
    steps = ((1010.0, 2), (1025.0, 2), (1039.9, 2), (1040.0, 3), (1069.9, 3), (1070.0, 4))
    for now, asked in steps:
        clock.now = now
        assert (await index.lookup("demo")) == (first, CacheState.STALE), now
        await settled(index)
        assert page_requests(fake_upstream) == asked, now
    fake_upstream.bad.page_status = None
    clock.now = 1099.9  # still within retry_after_error of the last failure
    assert (await index.lookup("demo")) == (first, CacheState.STALE)
    await settled(index)
    assert page_requests(fake_upstream) == 4
    clock.now = 1100.0
    assert (await index.lookup("demo")) == (first, CacheState.STALE)  # refreshed in the background
    await settled(index)
    record, state = await index.lookup("demo")
    assert state is CacheState.HIT and record.fetched_at == 1100.0 and record.content_id == first.content_id
    assert page_requests(fake_upstream) == 5


# The project list ----------------------------------------------------------------------------------


async def test_the_project_list_is_fresh_for_project_list_fresh_for_then_revalidated_or_replaced(
        index_for: MakeIndex, fake_upstream: FakeUpstream) -> None:
    clock = Clock()
    index = await index_for(clock, list_projects=True, project_list_fresh_for=100, stale_timeout=5)
    first, state = await index.project_list()
    assert state is CacheState.MISS and first is not None and first.names == ("demo", "dep")
    assert list_requests(fake_upstream) == 1
    clock.now = 1099.9
    assert (await index.project_list()) == (first, CacheState.HIT)
    assert list_requests(fake_upstream) == 1
    clock.now = 1100.0
    revalidated, state = await index.project_list()
    assert state is CacheState.REVALIDATED and revalidated is not None
    assert revalidated.names == first.names and revalidated.fetched_at == 1100.0
    assert list_requests(fake_upstream) == 2 and fake_upstream.seen_headers[-1]["If-None-Match"] == first.etag
    clock.now = 1199.9  # the 304 renewed it
    assert (await index.project_list())[1] is CacheState.HIT
    fake_upstream.add(Dist("newcomer", "1.0"))
    clock.now = 1200.0
    replaced, state = await index.project_list()
    assert state is CacheState.MISS and replaced is not None and replaced.names == ("demo", "dep", "newcomer")
    assert replaced.fetched_at == 1200.0 and list_requests(fake_upstream) == 3
    clock.now = 1299.9
    assert (await index.project_list()) == (replaced, CacheState.HIT)
    assert list_requests(fake_upstream) == 3


async def test_a_failing_project_list_is_served_stale_and_not_asked_for_retry_after_error(
        index_for: MakeIndex, fake_upstream: FakeUpstream) -> None:
    clock = Clock()
    index = await index_for(clock, list_projects=True, project_list_fresh_for=100, retry_after_error=30,
                            stale_timeout=5)
    first, _ = await index.project_list()
    fake_upstream.bad.page_status = 503
    for now, asked in ((1100.0, 2), (1129.9, 2), (1130.0, 3), (1159.9, 3)):
        clock.now = now
        assert (await index.project_list()) == (first, CacheState.STALE), now
        await settled(index)
        assert list_requests(fake_upstream) == asked, now
    fake_upstream.bad.page_status = None
    clock.now = 1160.0
    assert (await index.project_list()) == (first, CacheState.STALE)  # refreshed in the background
    await settled(index)
    record, state = await index.project_list()
    assert state is CacheState.HIT and record is not None and record.fetched_at == 1160.0
    assert list_requests(fake_upstream) == 4
