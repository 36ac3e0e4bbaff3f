"""Upstream page records in the shared database (issue 14): the same contract as the diskcache of
the embedded mode (tests/test_upstream_units.py), over SQLite and PostgreSQL, plus what only the
database promises (a newer record never overwritten by an older one, one bound for every
replica); and the advisory locks that give replicas their turns to fetch a page."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from proxy.core.errors import DatabaseUnavailable
from proxy.core.indexpage import IndexFile, IndexPage
from proxy.storage.sql.changefeed import conninfo
from proxy.storage.sql.engine import open_engine
from proxy.storage.sql.page_locks import AdvisoryTurns
from proxy.storage.sql.schema import upstream_pages
from proxy.storage.sql.upstream_pages import RECORD_TYPE, SqlPageCache
from proxy.storage.upstream_pages import CachedPage, CachedProjectList, PageCache, PageStore, upstream_id
from tests.storebackends import Backend, open_backend

KINDS = ("diskcache", "sqlite", "postgresql")
PYPI = upstream_id("https://pypi.org/simple")
MIRROR = upstream_id("https://mirror.example/simple")
MakeStore = Callable[..., PageStore]


def page_of(name: str, files: int = 1) -> IndexPage:
    return IndexPage(name=name, versions=("1.0",), files=tuple(
        IndexFile(f"{name}-1.0.{n}.tar.gz", f"https://files.example/{name}-{n}.tar.gz", {"sha256": f"{n:064x}"}, size=3)
        for n in range(files)))


def record_of(name: str, fetched_at: float = 1000.0, files: int = 1, etag: str = '"e"') -> CachedPage:
    return CachedPage(200, fetched_at, page_of(name, files), etag=etag, last_modified="Mon", content_id="c",
                      upstream=PYPI)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> Iterator[Backend | None]:
    if kind == "diskcache":
        yield None
    else:
        yield from open_backend(request, kind, tmp_path)


@pytest.fixture
def make_store(backend: Backend | None, tmp_path: Path) -> Iterator[MakeStore]:
    """A new store on the test's storage per call (another process or replica, to the store)."""
    opened: list[PageStore] = []

    def make(size_limit: int = 2**24) -> PageStore:
        store: PageStore
        if backend is None:
            store = PageCache(tmp_path / "pages", size_limit)
        else:
            store = SqlPageCache(backend.engine(), size_limit)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_records_round_trip_through_another_instance(make_store: MakeStore) -> None:
    first, second = make_store(), make_store()
    gone = CachedPage(404, 5.0, upstream=PYPI)
    names = CachedProjectList(7.0, ("A", "b"), etag='"l"', upstream=PYPI)
    first.store_page("demo", record_of("demo"))
    first.store_page("nope", gone)
    first.store_project_list(names)
    assert second.page("demo", PYPI) == record_of("demo")
    assert second.page("nope", PYPI) == gone
    assert second.project_list(PYPI) == names
    assert second.page("other", PYPI) is None
    assert second.volume() > 0


def test_a_record_of_another_upstream_is_a_miss(make_store: MakeStore) -> None:
    store = make_store()
    store.store_page("demo", record_of("demo"))
    store.store_project_list(CachedProjectList(7.0, ("demo",), upstream=PYPI))
    assert store.page("demo", MIRROR) is None and store.project_list(MIRROR) is None
    assert store.page("demo") == record_of("demo"), "`check` reads whatever is cached"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_older_record_never_replaces_a_newer_one(make_store: MakeStore) -> None:
    """Two replicas store one page at once: the later answer from upstream stays, whichever
    write comes last."""
    a, b = make_store(), make_store()
    a.store_page("demo", record_of("demo", 2000.0, etag='"new"'))
    b.store_page("demo", record_of("demo", 1000.0, etag='"old"'))
    assert a.page("demo") == record_of("demo", 2000.0, etag='"new"')
    b.store_page("demo", record_of("demo", 3000.0, etag='"newer"'))
    assert a.page("demo") == record_of("demo", 3000.0, etag='"newer"')


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@pytest.mark.parametrize(("body", "content_type"), [
    (b"not zlib", RECORD_TYPE),
    (zlib.compress(b"{broken"), RECORD_TYPE),
    (zlib.compress(b'{"format": 999}'), RECORD_TYPE),
    (zlib.compress(b"{}"), "application/json"),  # another version's coding
])
def test_a_damaged_row_or_one_in_another_coding_is_a_miss(make_store: MakeStore, backend: Backend,
                                                          body: bytes, content_type: str) -> None:
    store = make_store()
    store.store_page("demo", record_of("demo"))
    with backend.engine().begin() as connection:
        connection.execute(update(upstream_pages).values(body=body, content_type=content_type))
    assert store.page("demo") is None
    store.store_page("demo", record_of("demo", 1001.0))
    assert store.page("demo") == record_of("demo", 1001.0), "a new fetch replaces it"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_bound_removes_the_least_recently_stored_pages_and_keeps_the_project_list(
        make_store: MakeStore, backend: Backend) -> None:
    names = CachedProjectList(1.0, tuple(f"project-{n}" for n in range(2000)), upstream=PYPI)
    probe = make_store()
    probe.store_project_list(names)
    probe.store_page("p0", record_of("p0", 1000.0, files=40))
    one_page = probe.volume() - _list_bytes(backend)
    limit = _list_bytes(backend) + 5 * one_page + one_page // 2  # room for five pages and a half
    store = make_store(limit)
    for n in range(1, 12):
        store.store_page(f"p{n}", record_of(f"p{n}", 1000.0 + n, files=40))
    store.trim()
    with backend.engine().connect() as connection:
        kept = set(connection.scalars(select(upstream_pages.c.name)))
    assert kept == {"", "p7", "p8", "p9", "p10", "p11"}
    assert store.volume() <= limit and store.project_list(PYPI) == names


def _list_bytes(backend: Backend) -> int:
    with backend.engine().connect() as connection:
        body = connection.scalar(select(upstream_pages.c.body).where(upstream_pages.c.name == ""))
    return len(body or b"")


def test_an_unreachable_database_reads_as_a_miss_and_fails_writes(pg_url: str) -> None:
    url = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    store = SqlPageCache(open_engine(url, connect_timeout=1), 2**20)
    try:
        assert store.page("demo") is None and store.project_list() is None
        with pytest.raises(DatabaseUnavailable):
            store.store_page("demo", record_of("demo"))
    finally:
        store.engine.dispose()


# Turns to fetch ---------------------------------------------------------------------------------


@pytest.fixture
async def turns(pg_url: str) -> AsyncIterator[tuple[AdvisoryTurns, AdvisoryTurns]]:
    """Turns of two replicas on one database (each its own connection)."""
    engine = open_engine(pg_url)
    url = conninfo(engine)
    engine.dispose()
    assert url is not None
    a, b = AdvisoryTurns(url), AdvisoryTurns(url)
    yield a, b
    await a.close()
    await b.close()


async def test_one_replica_at_a_time_holds_a_pages_turn(turns: tuple[AdvisoryTurns, AdvisoryTurns]) -> None:
    a, b = turns
    async with a.turn("page:demo", 1.0) as mine:
        assert mine
        async with b.turn("page:demo", 0.2) as theirs:
            assert not theirs, "A holds it: B is told after its wait"
        async with b.turn("page:other", 0.2) as other:
            assert other, "another page's turn is free"
    async with b.turn("page:demo", 0.2) as now_theirs:
        assert now_theirs, "A let go"


async def test_a_waiting_replica_gets_the_turn_when_the_holder_lets_go(
        turns: tuple[AdvisoryTurns, AdvisoryTurns]) -> None:
    a, b = turns
    order: list[str] = []
    held = asyncio.Event()

    async def holder() -> None:
        async with a.turn("page:demo", 1.0):
            held.set()
            await asyncio.sleep(0.3)  # the fetch B waits for, as long as it takes
            order.append("A done")

    async def waiter() -> None:
        await held.wait()
        async with b.turn("page:demo", 10.0) as mine:
            order.append(f"B mine={mine}")

    await asyncio.gather(holder(), waiter())
    assert order == ["A done", "B mine=True"]


async def test_a_replica_that_loses_the_database_holds_nothing_and_the_other_gets_the_turn(
        turns: tuple[AdvisoryTurns, AdvisoryTurns]) -> None:
    a, b = turns
    async with a.turn("page:demo", 1.0) as mine:
        assert mine
        assert a._connection is not None
        await a._connection.close()  # as a crash or a network cut would
        async with b.turn("page:demo", 1.0) as theirs:
            assert theirs


async def test_without_a_database_every_replica_fetches_for_itself() -> None:
    nowhere = AdvisoryTurns("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1)
    async with nowhere.turn("page:demo", 1.0) as mine:
        assert mine
    await nowhere.close()
