"""Upstream pages, metrics and health across replicas (issue 14): two apps in one process on one
PostgreSQL database and one SeaweedFS bucket, with a counting fake upstream. What one replica
fetched, the other reads from the database; a stale page wanted by both at once is fetched once
(turns: proxy.upstream.turns); each replica's metrics carry its name; /-/health tells whether
the database and the object store answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings, settings_from_mapping
from proxy.core.indexpage import IndexFile, IndexPage
from proxy.objectsettings import ObjectStoreSettings, flatten
from proxy.storage.sql.engine import open_engine
from proxy.storage.sql.migrate import upgrade
from proxy.storage.sql.upstream_pages import SqlPageCache
from proxy.storage.upstream_pages import CachedPage, upstream_id
from tests.conftest import start_client
from tests.s3server import SeaweedFS
from tests.test_web_ops import samples
from tests.fakeupstream import FakeUpstream
from tests.waiting import until

JSON_PAGE = {"Accept": "application/vnd.pypi.simple.v1+json"}
MakeReplica = Callable[..., Settings]


@pytest.fixture
def replica(tmp_path: Path, pg_url: str, s3_settings: ObjectStoreSettings,
            fake_upstream: FakeUpstream) -> Iterator[MakeReplica]:
    """Settings of one more replica (its own data dir) on the test's database, bucket and fake
    upstream; the database upgraded."""
    engine = open_engine(pg_url)
    upgrade(engine)
    engine.dispose()
    made = iter(range(1, 100))

    def make(name: str | None = None, **sections: dict[str, Any]) -> Settings:
        number = next(made)
        return settings_from_mapping({
            "storage": {"data_dir": str(tmp_path / f"replica-{number}"), "database": pg_url, **flatten(s3_settings),
                        **sections.pop("storage", {})},
            "upstream": {"enabled": True, "url": fake_upstream.url, "connect_timeout": 2, "read_timeout": 5,
                         "list_projects": True, **sections.pop("upstream", {})},
            "server": {"replica": name} if name else {},
            **sections,
        })

    yield make


@pytest.fixture
def records(pg_url: str) -> Iterator[SqlPageCache]:
    """The page records as any replica reads them."""
    store = SqlPageCache(open_engine(pg_url), 2**30)
    yield store
    store.engine.dispose()


async def filenames(client: TestClient, project: str) -> tuple[list[str], str]:
    response = await client.get(f"/pypi/simple/{project}/", headers=JSON_PAGE)
    assert response.status == 200, await response.text()
    return [f["filename"] for f in (await response.json())["files"]], response.headers.get("X-Proxy-Cache", "")


async def test_a_page_one_replica_fetched_is_read_by_the_other_without_asking_upstream(
        aiohttp_client: Any, replica: MakeReplica, fake_upstream: FakeUpstream) -> None:
    a = await start_client(aiohttp_client, replica())
    b = await start_client(aiohttp_client, replica())
    on_a, state = await filenames(a, "demo")
    assert state == "miss" and fake_upstream.requests["/simple/demo/"] == 1
    assert await filenames(b, "demo") == (on_a, "hit")
    root = await b.get("/pypi/simple/", headers=JSON_PAGE)  # the project list, first asked on B
    names = [p["name"] for p in (await root.json())["projects"]]
    assert names == ["demo", "dep"] and fake_upstream.requests["/simple/"] == 1
    root_a = await a.get("/pypi/simple/", headers=JSON_PAGE)
    assert [p["name"] for p in (await root_a.json())["projects"]] == names
    assert fake_upstream.requests == {"/simple/demo/": 1, "/simple/": 1}, "every page fetched once in all"


async def test_a_stale_page_wanted_on_both_replicas_at_once_is_fetched_once(
        aiohttp_client: Any, replica: MakeReplica, fake_upstream: FakeUpstream, records: SqlPageCache) -> None:
    an_hour_ago = time.time() - 3600
    old = IndexPage(name="demo", versions=("0.9",), files=(
        IndexFile("demo-0.9.tar.gz", f"{fake_upstream.origin}/files/demo-0.9.tar.gz", {"sha256": "ab" * 32}),))
    records.store_page("demo", CachedPage(200, an_hour_ago, old, content_id="old", upstream=upstream_id(fake_upstream.url)))
    a = await start_client(aiohttp_client, replica())
    b = await start_client(aiohttp_client, replica())
    fake_upstream.bad.delay = 0.5  # the first replica's fetch is still running when the other asks
    first = await asyncio.gather(filenames(a, "demo"), filenames(b, "demo"))
    assert first == [(["demo-0.9.tar.gz"], "stale")] * 2, "both answer their copy while the refresh runs"
    fresh = ["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"]

    async def both_fresh() -> bool:
        return await filenames(a, "demo") == (fresh, "hit") and await filenames(b, "demo") == (fresh, "hit")

    await until(both_fresh, "both replicas serve the refreshed page", within=15)
    assert fake_upstream.requests["/simple/demo/"] == 1, "one replica fetched; the other read its record"
    assert records.page("demo") is not None and records.page("demo").fetched_at > an_hour_ago  # type: ignore[union-attr]


async def test_a_cold_page_wanted_on_both_replicas_at_once_is_fetched_once(
        aiohttp_client: Any, replica: MakeReplica, fake_upstream: FakeUpstream) -> None:
    a = await start_client(aiohttp_client, replica())
    b = await start_client(aiohttp_client, replica())
    fake_upstream.bad.delay = 0.5  # the first replica's fetch is still running when the other asks
    answers = await asyncio.gather(filenames(a, "dep"), filenames(b, "dep"))
    assert sorted(state for _, state in answers) == ["hit", "miss"], "one fetched, the other read its record"
    assert answers[0][0] == answers[1][0] == ["dep-2.0-py3-none-any.whl", "dep-2.0.tar.gz"]
    assert fake_upstream.requests["/simple/dep/"] == 1


async def test_each_replicas_metrics_carry_its_name_on_every_sample(
        aiohttp_client: Any, replica: MakeReplica) -> None:
    clients = {name: await start_client(aiohttp_client, replica(name)) for name in ("A", "B")}
    for name, client in clients.items():
        assert (await client.get("/pypi/simple/demo/")).status == 200
        text = samples(await (await client.get("/-/metrics")).text())
        assert text and all(f'replica="{name}"' in key for key in text), sorted(text)[:3]
        route = 'route="/pypi/simple/{project}/",status="200"'
        assert text[f'pypi_proxy_requests_total{{method="GET",replica="{name}",{route}}}'] == 1
        assert text[f'pypi_proxy_page_cache_bytes{{replica="{name}"}}'] > 0, "the shared table's bytes"


async def test_health_names_the_replica_and_tells_the_database_and_object_store_answer(
        aiohttp_client: Any, replica: MakeReplica, pg_url: str) -> None:
    client = await start_client(aiohttp_client, replica("A"))
    response = await client.get("/-/health")
    body = await response.json()
    assert response.status == 200 and body["status"] == "ok" and body["replica"] == "A"
    assert body["shared"]["database"] == {"name": pg_url, "reachable": True, "error": None}
    assert body["shared"]["objects"]["reachable"] is True and body["shared"]["objects"]["name"].startswith("s3://")


async def test_health_shows_a_stopped_object_store_as_down_with_the_reason(
        aiohttp_client: Any, replica: MakeReplica, seaweedfs_outage: SeaweedFS) -> None:
    client = await start_client(aiohttp_client, replica("A", storage={"objects_request_timeout": 2}))
    with seaweedfs_outage.stopped():
        body = await (await client.get("/-/health")).json()
    objects = body["shared"]["objects"]
    assert objects["reachable"] is False and objects["error"], objects
    assert body["shared"]["database"]["reachable"] is True
    assert body["status"] == "ok", "every replica shares the store: taking this one out helps nobody"


async def test_the_embedded_mode_names_its_replica_by_the_host_and_has_no_shared_part(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings]) -> None:
    import socket

    client = await start_client(aiohttp_client, upstream_settings())
    body = await (await client.get("/-/health")).json()
    assert body["replica"] == socket.gethostname().split(".")[0] and body["shared"] is None
    assert not [key for key in samples(await (await client.get("/-/metrics")).text()) if "replica=" in key]
