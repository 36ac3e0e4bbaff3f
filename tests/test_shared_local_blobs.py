"""The local tier of private blobs in stream mode (issue 14): a replica that streamed a file from
the object store keeps a verified copy in ``data_dir/cache/blobs`` and sends it from there, so
the store is not read again (it may even be down); a copy of the wrong size is dropped, a fill
whose bytes are not the blob's keeps nothing, and the tier stays under its bound (LRU)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.config import Settings
from proxy.core.errors import ObjectIntegrityError
from proxy.objectsettings import ObjectStoreSettings
from proxy.storage.backends import open_stores
from proxy.storage.localblobs import LocalBlobs
from proxy.storage.sql.migrate import upgrade
from tests.conftest import PASSWORD, start_client
from tests.s3server import SeaweedFS
from tests.test_shared_mode import DIST, listed, shared_settings, upload
from tests.waiting import until

DIGEST = hashlib.sha256(DIST.wheel()).hexdigest()
URL = f"/pypi/files/acme-shared/{DIST.wheel_filename}"


@pytest.fixture
def replica(tmp_path: Path, pg_url: str, s3_settings: ObjectStoreSettings) -> Iterator[Callable[[], Settings]]:
    """Settings of one more replica (its own data dir) on the test's database and bucket."""
    made = iter(range(1, 100))
    stores = open_stores(shared_settings(tmp_path / "admin", pg_url, s3_settings))
    try:
        assert stores.shared is not None
        upgrade(stores.shared.engine)
        stores.auth.add_user("alice", PASSWORD)
    finally:
        stores.close()
    yield lambda: shared_settings(tmp_path / f"replica-{next(made)}", pg_url, s3_settings)


def copy_of(settings: Settings) -> Path:
    return settings.data_dir / "cache" / "blobs" / DIGEST[:2] / DIGEST


async def exists(path: Path) -> bool:
    return await asyncio.to_thread(path.is_file)


async def test_a_replica_sends_its_copy_without_the_store_and_one_without_a_copy_answers_503(
        aiohttp_client: Any, replica: Callable[[], Settings], seaweedfs_outage: SeaweedFS) -> None:
    data = DIST.wheel()
    a = await start_client(aiohttp_client, replica())
    b_settings = replica()
    b = await start_client(aiohttp_client, b_settings)
    c = await start_client(aiohttp_client, replica())
    assert (await upload(a, DIST)).status == 200

    async def seen() -> bool:
        return all([await listed(replica, "acme-shared") == [DIST.wheel_filename] for replica in (b, c)])

    await until(seen, "B and C list the file A stored")
    first = await b.get(URL)
    assert first.status == 200 and await first.read() == data, "the first request streams from the store"
    await until(lambda: exists(copy_of(b_settings)), "B keeps a copy of what it streamed")
    assert await asyncio.to_thread(copy_of(b_settings).read_bytes) == data
    with seaweedfs_outage.stopped():
        again = await b.get(URL)
        assert again.status == 200 and await again.read() == data
        assert again.headers["X-Proxy-Source"] == "private"
        head = await b.head(URL)
        assert head.status == 200 and int(head.headers["Content-Length"]) == len(data)
        part = await b.get(URL, headers={"Range": "bytes=10-19"})
        assert part.status == 206 and await part.read() == data[10:20]
        assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
        down = await c.get(URL)
        assert down.status == 503 and "object store" in await down.text()


async def test_a_copy_of_the_wrong_size_is_dropped_and_filled_again(
        aiohttp_client: Any, replica: Callable[[], Settings], seaweedfs_outage: SeaweedFS) -> None:
    data = DIST.wheel()
    settings = replica()
    a = await start_client(aiohttp_client, settings)
    assert (await upload(a, DIST)).status == 200
    assert await (await a.get(URL)).read() == data
    copy = copy_of(settings)
    await until(lambda: exists(copy), "a copy is kept")
    await asyncio.to_thread(copy.write_bytes, b"not the wheel")
    with seaweedfs_outage.stopped():
        refused = await a.get(URL)
        assert refused.status == 503, "the damaged copy is not sent; the store is asked and is down"
    assert not await exists(copy), "the damaged copy was removed"
    fetched = await a.get(URL)
    assert fetched.status == 200 and await fetched.read() == data
    await until(lambda: exists(copy), "a good copy is kept again")
    assert await asyncio.to_thread(copy.read_bytes) == data


async def test_a_range_or_head_from_the_store_keeps_no_partial_copy(
        aiohttp_client: Any, replica: Callable[[], Settings]) -> None:
    settings = replica()
    a = await start_client(aiohttp_client, settings)
    assert (await upload(a, DIST)).status == 200
    assert (await a.head(URL)).status == 200
    part = await a.get(URL, headers={"Range": "bytes=0-9"})
    assert part.status == 206 and await part.read() == DIST.wheel()[:10]
    assert not await exists(copy_of(settings))
    leftovers = await asyncio.to_thread(lambda: list((settings.data_dir / "cache" / "blobs").rglob(".tmp-*")))
    assert [p for p in leftovers if p.is_file()] == []


def test_a_fill_whose_bytes_are_not_the_blobs_keeps_nothing(tmp_path: Path) -> None:
    tier = LocalBlobs(tmp_path / "blobs", 1 << 20)
    fill = tier.begin(DIGEST, len(DIST.wheel()))
    fill.write(b"x" * len(DIST.wheel()))
    with pytest.raises(ObjectIntegrityError):
        fill.commit()
    too_long = tier.begin(DIGEST, 4)
    with pytest.raises(ObjectIntegrityError):
        too_long.write(b"12345")
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []
    good = tier.begin(DIGEST, len(DIST.wheel()))
    good.write(DIST.wheel())
    assert good.commit().read_bytes() == DIST.wheel()
    assert tier.find(DIGEST, len(DIST.wheel())) == tier.path_of(DIGEST)


def test_the_tier_sweeps_the_least_recently_used_copies_past_its_bound(tmp_path: Path) -> None:
    blobs = [bytes([n]) * 400 for n in range(3)]
    digests = [hashlib.sha256(blob).hexdigest() for blob in blobs]
    tier = LocalBlobs(tmp_path / "blobs", 1000)
    for age, (digest, blob) in enumerate(zip(digests, blobs)):
        fill = tier.begin(digest, len(blob))
        fill.write(blob)
        path = fill.commit()
        os.utime(path, (1_000_000 + age, 1_000_000))
    # the third fill went over 1000 bytes: the least recently used copy went, down to 900 or less
    assert sorted(p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()) == sorted(digests[1:])
    assert tier.find(digests[1], 400) is not None  # used now: the most recent
    again = LocalBlobs(tmp_path / "blobs", 500)
    again.start()  # at start-up, under a lower bound
    assert [p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == [digests[1]]
