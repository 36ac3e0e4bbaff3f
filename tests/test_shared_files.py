"""The shared tier of cached public files (issue 14), in one process: two replicas (two apps, each its
own data dir) on one PostgreSQL database and one SeaweedFS bucket, in front of one counting fake
upstream. A cold file asked of both at once is fetched from upstream once; a replica that misses
its disk reads the object store; the store down costs sharing, never the file; the size limit
holds for the whole cluster. Replicas as processes (kill -9 mid-download): tests/e2e/test_shared_files.py."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine, select

from proxy.config import Settings, settings_from_mapping
from proxy.objectsettings import ObjectStoreSettings, flatten
from proxy.ops.sharedcheck import check_shared
from proxy.storage.objectblobs import ObjectBlobs
from proxy.storage.objects import ObjectStore, blob_key
from proxy.storage.sql.cached_files import CachedFileRows, CachedRecord
from proxy.storage.sql.engine import open_engine
from proxy.storage.sql.migrate import upgrade
from proxy.storage.sql.private_index import SqlPrivateStorage
from proxy.storage.sql.schema import cached_files
from tests.conftest import start_client
from tests.fakeupstream import FakeFile, FakeUpstream
from tests.pgserver import PgCluster
from tests.s3server import SeaweedFS
from tests.storebackends import WHEEL, commit
from tests.waiting import until

PROJECT = "bigpkg"


def sdist(version: str, size: int = 256 * 1024) -> FakeFile:
    """A file of random bytes under an sdist's name (nothing is derived from its contents)."""
    return FakeFile(f"{PROJECT}-{version}.tar.gz", os.urandom(size))


def path_of(file: FakeFile) -> str:
    return f"/files/{file.filename}"


@pytest.fixture
def database(pg_url: str) -> Iterator[Engine]:
    engine = open_engine(pg_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def objects(s3_settings: ObjectStoreSettings) -> Iterator[ObjectStore]:
    store = ObjectStore(s3_settings)
    yield store
    store.close()


@pytest.fixture
def replica(tmp_path: Path, pg_url: str, s3_settings: ObjectStoreSettings, database: Engine,
            fake_upstream: FakeUpstream) -> Callable[..., Settings]:
    """Settings of one more replica (its own data dir) on the test's database, bucket and upstream."""
    made = itertools.count(1)

    def make(**sections: dict[str, Any]) -> Settings:
        data: dict[str, dict[str, Any]] = {
            "storage": {"data_dir": str(tmp_path / f"replica-{next(made)}"), "database": pg_url,
                        **flatten(s3_settings)},
            "upstream": {"enabled": True, "url": fake_upstream.url, "connect_timeout": 2, "read_timeout": 5},
        }
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        return settings_from_mapping(data)

    return make


def rows(engine: Engine) -> dict[str, tuple[str, int]]:
    with engine.connect() as connection:
        found = connection.execute(select(cached_files.c.key, cached_files.c.sha256, cached_files.c.size)).all()
    return {row.key: (row.sha256, row.size) for row in found}


async def fetch(client: TestClient, file: FakeFile) -> tuple[int, bytes]:
    response = await client.get(f"/pypi/files/{PROJECT}/{file.filename}")
    return response.status, await response.read()


async def published(engine: Engine, file: FakeFile) -> None:
    key = f"{PROJECT}/{file.filename}"

    async def listed() -> bool:
        return key in await asyncio.to_thread(rows, engine)

    await until(listed, f"{file.filename} listed in cached_files", within=20)


async def test_a_cold_file_asked_of_two_replicas_at_once_is_fetched_from_upstream_once(
        replica: Callable[..., Settings], fake_upstream: FakeUpstream, database: Engine, objects: ObjectStore,
        aiohttp_client: Any) -> None:
    file = fake_upstream.add_file(PROJECT, sdist("1.0", 512 * 1024))
    fake_upstream.bad.file_chunk_size, fake_upstream.bad.file_chunk_pause = 32 * 1024, 0.02  # ~0.3 s
    a = await start_client(aiohttp_client, replica())
    b = await start_client(aiohttp_client, replica())
    answers = await asyncio.gather(*(fetch(client, file) for client in [a, b] * 10))
    assert [status for status, _ in answers] == [200] * 20
    assert all(body == file.content for _, body in answers), "every client got the verified bytes"
    assert fake_upstream.requests[path_of(file)] == 1
    await published(database, file)
    assert rows(database)[f"{PROJECT}/{file.filename}"] == (file.sha256, len(file.content))
    assert await asyncio.to_thread(objects.stat, blob_key(file.sha256)) == len(file.content)


async def test_a_replica_missing_its_disk_reads_the_object_store_then_its_disk(
        replica: Callable[..., Settings], fake_upstream: FakeUpstream, database: Engine,
        aiohttp_client: Any) -> None:
    file = fake_upstream.add_file(PROJECT, sdist("1.0"))
    a = await start_client(aiohttp_client, replica())
    assert await fetch(a, file) == (200, file.content)
    await published(database, file)
    settings_b = replica()
    b = await start_client(aiohttp_client, settings_b)
    assert await fetch(b, file) == (200, file.content)
    assert fake_upstream.requests[path_of(file)] == 1, "B read the object store, not upstream"
    local = settings_b.data_dir / "cache" / "files" / PROJECT / file.filename
    await until(local.exists, "B's copy committed to its disk")  # after the client had every byte
    assert hashlib.sha256(local.read_bytes()).hexdigest() == file.sha256, "B's own disk holds it now"
    again = await b.get(f"/pypi/files/{PROJECT}/{file.filename}")
    assert again.status == 200 and await again.read() == file.content
    assert again.headers["X-Proxy-Cache"] == "hit"
    assert fake_upstream.requests[path_of(file)] == 1
    report = await asyncio.to_thread(check_shared, replica(), True)
    assert (report.listed, report.problems, report.garbage) == (1, [], []), "pypi-proxy check counts it as listed"


async def test_a_damaged_shared_copy_is_dropped_and_the_file_fetched_from_upstream(
        replica: Callable[..., Settings], fake_upstream: FakeUpstream, database: Engine, objects: ObjectStore,
        aiohttp_client: Any) -> None:
    file = fake_upstream.add_file(PROJECT, sdist("1.0"))
    a = await start_client(aiohttp_client, replica())
    assert await fetch(a, file) == (200, file.content)
    await published(database, file)
    await asyncio.to_thread(objects.remove, blob_key(file.sha256))  # lost behind the database's back
    b = await start_client(aiohttp_client, replica())
    assert await fetch(b, file) == (200, file.content)
    assert fake_upstream.requests[path_of(file)] == 2, "B fetched it from upstream, and shared it again"
    await until(lambda: objects.stat(blob_key(file.sha256)) == len(file.content), "the blob put again",
                within=20)


async def test_with_the_object_store_down_a_cold_file_is_served_and_not_shared(
        replica: Callable[..., Settings], fake_upstream: FakeUpstream, database: Engine,
        seaweedfs_outage: SeaweedFS, aiohttp_client: Any) -> None:
    file = fake_upstream.add_file(PROJECT, sdist("1.0"))
    a = await start_client(aiohttp_client, replica())
    with seaweedfs_outage.stopped():
        assert await fetch(a, file) == (200, file.content)
        b = await start_client(aiohttp_client, replica())
        assert await fetch(b, file) == (200, file.content)
        assert fake_upstream.requests[path_of(file)] == 2, "each replica fetched it for itself"
    assert rows(database) == {}, "nothing listed that the store does not hold"
    c = await start_client(aiohttp_client, replica())
    assert await fetch(c, file) == (200, file.content)
    await published(database, file)


async def test_with_the_database_down_a_cold_file_is_served_and_not_shared(
        replica: Callable[..., Settings], fake_upstream: FakeUpstream, database: Engine, pg_cluster: PgCluster,
        aiohttp_client: Any) -> None:
    file = fake_upstream.add_file(PROJECT, sdist("1.0"))
    a = await start_client(aiohttp_client, replica())
    await asyncio.to_thread(pg_cluster.stop)
    try:
        assert await fetch(a, file) == (200, file.content)
    finally:
        await asyncio.to_thread(pg_cluster.start)
    assert fake_upstream.requests[path_of(file)] == 1
    assert await asyncio.to_thread(rows, database) == {}
    b = await start_client(aiohttp_client, replica())
    assert await fetch(b, file) == (200, file.content), "B fetches it, and shares it this time"
    await published(database, file)

async def test_the_size_limit_holds_for_the_whole_cluster_least_recently_used_first(
        replica: Callable[..., Settings], fake_upstream: FakeUpstream, database: Engine, objects: ObjectStore,
        aiohttp_client: Any) -> None:
    size = 100 * 1024
    first, second, third = (fake_upstream.add_file(PROJECT, sdist(v, size)) for v in ("1.0", "2.0", "3.0"))
    limit = {"cache": {"files_max_size": str(int(size * 2.5))}}
    a = await start_client(aiohttp_client, replica(**limit))
    b = await start_client(aiohttp_client, replica(**limit))
    for file in (first, second):
        assert await fetch(a, file) == (200, file.content)
        await published(database, file)
    assert await fetch(b, first) == (200, first.content)  # read from the store: a use, batched
    assert await fetch(b, third) == (200, third.content)  # B's publication goes over the limit

    async def evicted() -> bool:
        return set(await asyncio.to_thread(rows, database)) == {f"{PROJECT}/{first.filename}",
                                                                 f"{PROJECT}/{third.filename}"}

    await until(evicted, "the least recently used row (second: first was used since) evicted", within=20)

    async def blob_gone() -> bool:  # rows go first, then the blobs no row lists: a moment apart
        return await asyncio.to_thread(objects.stat, blob_key(second.sha256)) is None

    await until(blob_gone, "its blob deleted after its row", within=20)
    assert await asyncio.to_thread(objects.stat, blob_key(first.sha256)) == size
    assert fake_upstream.requests[path_of(first)] == 1


def test_a_blob_a_private_file_and_a_cached_file_share_goes_with_the_last_row(
        database: Engine, tmp_path: Path) -> None:
    """Content-addressed: the same bytes uploaded privately and cached from upstream are one blob,
    kept while either row lists it, whichever goes first."""
    objects = ObjectStore(ObjectStoreSettings(url=f"file://{tmp_path / 'objects'}"))
    store = SqlPrivateStorage(database, ObjectBlobs(objects, tmp_path / "tmp"), tmp_path / "tmp")
    store.prepare()
    rows = CachedFileRows(database)
    data = b"the same bytes"
    digest = hashlib.sha256(data).hexdigest()
    key = blob_key(digest)

    def drop(gone: list[CachedRecord]) -> int:
        return rows.drop_blobs(gone, lambda sha256: objects.remove(blob_key(sha256)))

    try:
        commit(store, WHEEL, data)
        rows.record(CachedRecord("public", "public-1.0.tar.gz", digest, len(data)), lambda: None)
        evicted = rows.evict(0)
        assert [record.filename for record in evicted] == ["public-1.0.tar.gz"]
        assert drop(evicted) == 0 and objects.stat(key) == len(data), "the private file still lists it"
        rows.record(CachedRecord("public", "public-1.0.tar.gz", digest, len(data)), lambda: None)
        store.remove_files("demo", {WHEEL})
        assert objects.stat(key) == len(data), "the cached file still lists it"
        assert drop(rows.evict(0)) == 1 and objects.stat(key) is None, "no row lists it: deleted"
    finally:
        objects.close()


async def test_on_sqlite_replicas_share_files_through_the_store_without_locks(
        tmp_path: Path, fake_upstream: FakeUpstream, aiohttp_client: Any) -> None:
    """SQLite (one host) has no advisory locks (NoLocks): a replica that misses its disk still
    reads what another one shared."""
    database = f"sqlite:///{tmp_path / 'meta.db'}"
    engine = await asyncio.to_thread(open_engine, database)
    await asyncio.to_thread(upgrade, engine)
    file = fake_upstream.add_file(PROJECT, sdist("1.0"))

    def make(name: str) -> Settings:
        return settings_from_mapping({
            "storage": {"data_dir": str(tmp_path / name), "database": database,
                        "objects": f"file://{tmp_path / 'objects'}"},
            "upstream": {"enabled": True, "url": fake_upstream.url, "connect_timeout": 2, "read_timeout": 5}})

    a = await start_client(aiohttp_client, make("a"))
    assert await fetch(a, file) == (200, file.content)
    try:
        await published(engine, file)
    finally:
        await asyncio.to_thread(engine.dispose)
    b = await start_client(aiohttp_client, make("b"))
    assert await fetch(b, file) == (200, file.content)
    assert fake_upstream.requests[path_of(file)] == 1
