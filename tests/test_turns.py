"""Refreshing a page in turns (proxy/upstream/turns.py), on real advisory locks of one PostgreSQL
database: what a replica does with the turn, after another one refreshed the page, and when it
does not get the turn in time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from proxy.core.merge import CacheState
from proxy.storage.sql.changefeed import conninfo
from proxy.storage.sql.engine import open_engine
from proxy.storage.sql.page_locks import AdvisoryTurns
from proxy.storage.upstream_pages import CachedPage
from proxy.upstream.turns import in_turn, newer

NOW = 10_000.0
FRESH_FOR = 600.0


def record(fetched_at: float, etag: str = '"e"') -> CachedPage:
    return CachedPage(404, fetched_at, etag=etag)


def is_fresh(found: CachedPage) -> bool:
    return NOW - found.fetched_at < FRESH_FOR


@pytest.fixture
async def turns(pg_url: str) -> AsyncIterator[tuple[AdvisoryTurns, AdvisoryTurns]]:
    engine = open_engine(pg_url)
    url = conninfo(engine)
    engine.dispose()
    assert url is not None
    a, b = AdvisoryTurns(url), AdvisoryTurns(url)
    yield a, b
    await a.close()
    await b.close()


class Upstream:
    """What a refresh would fetch: counts the fetches and which record each revalidated."""

    def __init__(self) -> None:
        self.revalidated: list[CachedPage | None] = []

    async def fetch(self, current: CachedPage | None) -> tuple[CachedPage, CacheState]:
        self.revalidated.append(current)
        return record(NOW, '"new"'), CacheState.MISS


def test_newer_takes_the_later_answer() -> None:
    assert newer(record(2.0), record(1.0)) == record(2.0)
    assert newer(record(1.0), record(2.0)) == record(2.0)
    assert newer(None, record(1.0)) == record(1.0) and newer(record(1.0), None) == record(1.0)
    assert newer(None, None) is None


async def test_with_the_turn_a_stale_page_is_fetched_revalidating_the_latest_record(
        turns: tuple[AdvisoryTurns, AdvisoryTurns]) -> None:
    a, _ = turns
    upstream = Upstream()

    async def stored() -> CachedPage:
        return record(NOW - 2000, '"stored"')  # older than this replica's own copy

    found = await in_turn(a, "page:demo", 1.0, record(NOW - 1000, '"mine"'), stored, is_fresh, upstream.fetch)
    assert found == (record(NOW, '"new"'), CacheState.MISS)
    assert upstream.revalidated == [record(NOW - 1000, '"mine"')]


async def test_a_page_another_replica_refreshed_meanwhile_is_not_fetched(
        turns: tuple[AdvisoryTurns, AdvisoryTurns]) -> None:
    a, _ = turns
    upstream = Upstream()

    async def stored() -> CachedPage:
        return record(NOW - 1, '"theirs"')

    found = await in_turn(a, "page:demo", 1.0, record(NOW - 1000), stored, is_fresh, upstream.fetch)
    assert found == (record(NOW - 1, '"theirs"'), CacheState.HIT) and upstream.revalidated == []


async def test_without_the_turn_in_time_the_stale_copy_is_served_and_nothing_fetched(
        turns: tuple[AdvisoryTurns, AdvisoryTurns]) -> None:
    a, b = turns
    upstream = Upstream()

    async def stored() -> CachedPage | None:
        return None

    async with a.turn("page:demo", 1.0):  # another replica is fetching it, and takes long
        found = await in_turn(b, "page:demo", 0.2, record(NOW - 1000), stored, is_fresh, upstream.fetch)
    assert found == (record(NOW - 1000), CacheState.STALE) and upstream.revalidated == []


async def test_without_the_turn_and_without_a_copy_the_page_is_fetched_all_the_same(
        turns: tuple[AdvisoryTurns, AdvisoryTurns]) -> None:
    a, b = turns
    upstream = Upstream()

    async def stored() -> CachedPage | None:
        return None

    async with a.turn("page:demo", 1.0):
        found = await in_turn(b, "page:demo", 0.2, None, stored, is_fresh, upstream.fetch)
    assert found == (record(NOW, '"new"'), CacheState.MISS) and upstream.revalidated == [None]
