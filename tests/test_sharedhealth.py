"""Whether the shared mode's database and object store answer (proxy/storage/sharedhealth.py):
each named, with the reason when it does not, and looked at once per TTL however often asked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from proxy.config import Settings, settings_from_mapping
from proxy.objectsettings import ObjectStoreSettings, flatten
from proxy.storage.backends import Stores, open_stores
from proxy.storage.sharedhealth import SharedHealth
from tests.s3server import SeaweedFS

NOWHERE = "postgresql://nobody@127.0.0.1:1/none"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def settings_for(tmp_path: Path, database: str, objects: ObjectStoreSettings) -> Settings:
    return settings_from_mapping({"storage": {"data_dir": str(tmp_path), "database": database,
                                              "database_connect_timeout": 1, **flatten(objects)},
                                  "upstream": {"enabled": False}})


@pytest.fixture
async def stores_for(tmp_path: Path) -> AsyncIterator[Callable[[str, ObjectStoreSettings], Stores]]:
    opened: list[Stores] = []

    def make(database: str, objects: ObjectStoreSettings) -> Stores:
        stores = open_stores(settings_for(tmp_path, database, objects))  # connects to nothing yet
        opened.append(stores)
        return stores

    yield make
    for stores in opened:
        stores.close()


async def test_both_answering(stores_for: Callable[[str, ObjectStoreSettings], Stores], pg_url: str,
                              s3_settings: ObjectStoreSettings) -> None:
    stores = stores_for(pg_url, s3_settings)
    assert stores.shared is not None
    with ThreadPoolExecutor(2) as executor:
        report = await SharedHealth(stores.shared, executor).report()
    assert report["database"] == {"name": pg_url, "reachable": True, "error": None}
    assert report["objects"] == {"name": stores.shared.objects.name, "reachable": True, "error": None}


async def test_an_unreachable_database_is_named_with_the_reason(
        stores_for: Callable[[str, ObjectStoreSettings], Stores], s3_settings: ObjectStoreSettings) -> None:
    stores = stores_for(NOWHERE, s3_settings)
    assert stores.shared is not None
    with ThreadPoolExecutor(2) as executor:
        report = await SharedHealth(stores.shared, executor).report()
    database = report["database"]
    assert database["name"] == NOWHERE and database["reachable"] is False
    assert "connect" in database["error"] or "refused" in database["error"], database
    assert report["objects"]["reachable"] is True


async def test_a_look_is_reused_for_the_ttl_then_taken_again(
        stores_for: Callable[[str, ObjectStoreSettings], Stores], pg_url: str,
        s3_settings: ObjectStoreSettings, seaweedfs_outage: SeaweedFS) -> None:
    stores = stores_for(pg_url, replace(s3_settings, request_timeout=2.0))
    assert stores.shared is not None
    clock = Clock()
    with ThreadPoolExecutor(2) as executor:
        health = SharedHealth(stores.shared, executor, ttl=5.0, clock=clock)
        assert (await health.report())["objects"]["reachable"] is True
        with seaweedfs_outage.stopped():
            clock.now += 4.9
            assert (await health.report())["objects"]["reachable"] is True, "the look of 4.9 s ago"
            clock.now += 0.1
            objects = (await health.report())["objects"]
        assert objects["reachable"] is False and objects["error"], objects
