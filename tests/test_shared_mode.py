"""The shared mode in one process (issue 14): two replicas (two apps, each its own data dir) on one
PostgreSQL database (tests/pgserver.py) and one SeaweedFS bucket (tests/s3server.py). What one
replica commits, the other serves; a revoked token is refused by both; files come from the object
store, streamed (HEAD, ETag, Range) or by a presigned redirect; a store that is down is a 503
naming it. Subprocess replicas with real pip, uv and twine: tests/e2e/test_replicas.py."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings, settings_from_mapping
from proxy.core.errors import ConfigError
from proxy.objectsettings import ObjectStoreSettings, flatten
from proxy.storage.backends import Stores, open_stores
from proxy.repository.shared import SharedPrivateRepository
from proxy.storage.objectblobs import ObjectBlobs
from proxy.storage.objects import ObjectStore, blob_key
from proxy.storage.sql.engine import open_engine
from proxy.storage.sql.migrate import upgrade
from proxy.storage.sql.private_index import SqlPrivateStorage
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, start_client, upload_form
from tests.s3server import SeaweedFS
from tests.storebackends import METADATA, WHEEL, commit
from tests.waiting import until

DIST = Dist("Acme.Shared", "1.0", requires_python=">=3.8")
JSON_PAGE = {"Accept": "application/vnd.pypi.simple.v1+json"}


def shared_settings(data_dir: Path, database: str, objects: ObjectStoreSettings, **storage: Any) -> Settings:
    return settings_from_mapping({
        "storage": {"data_dir": str(data_dir), "database": database, **flatten(objects), **storage},
        "upstream": {"enabled": False},
    })


@pytest.fixture
def shared(tmp_path: Path, pg_url: str, s3_settings: ObjectStoreSettings) -> Iterator[Callable[..., Settings]]:
    """Settings of one more replica (its own data dir) on the test's database and bucket, the
    database upgraded, a user alice made."""
    made = iter(range(1, 100))
    first = shared_settings(tmp_path / "admin", pg_url, s3_settings)
    stores = open_stores(first)
    try:
        assert stores.shared is not None
        upgrade(stores.shared.engine)
        stores.auth.add_user("alice", PASSWORD)
    finally:
        stores.close()

    def make(**storage: Any) -> Settings:
        objects = ObjectStoreSettings(**{**s3_settings.__dict__, **storage.pop("objects", {})})
        return shared_settings(tmp_path / f"replica-{next(made)}", pg_url, objects, **storage)

    yield make


@pytest.fixture
async def admin(shared: Callable[..., Settings]) -> AsyncIterator[Stores]:
    """The stores as the command line opens them on the shared config."""
    stores = open_stores(shared())
    yield stores
    stores.close()


async def upload(client: TestClient, dist: Dist, headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
    return await client.post("/pypi/", data=upload_form(dist), headers=headers or basic("alice", PASSWORD))


async def listed(client: TestClient, project: str) -> list[str]:
    response = await client.get(f"/pypi/simple/{project}/", headers=JSON_PAGE)
    return [f["filename"] for f in (await response.json())["files"]] if response.status == 200 else []


async def test_an_upload_through_one_replica_is_served_by_the_other(
        aiohttp_client: Any, shared: Callable[..., Settings]) -> None:
    a = await start_client(aiohttp_client, shared())
    b = await start_client(aiohttp_client, shared())
    assert (await b.get("/pypi/simple/acme-shared/")).status == 404
    response = await upload(a, DIST)
    assert response.status == 200, await response.text()
    assert await listed(a, "acme-shared") == [DIST.wheel_filename], "A answers with its own upload at once"

    async def on_b() -> bool:
        return await listed(b, "acme-shared") == [DIST.wheel_filename]

    await until(on_b, "B lists the file A stored")
    got = await b.get(f"/pypi/files/acme-shared/{DIST.wheel_filename}")
    assert got.status == 200 and await got.read() == DIST.wheel()
    assert got.headers["ETag"] == f'"{hashlib.sha256(DIST.wheel()).hexdigest()}"'
    assert got.headers["X-Proxy-Source"] == "private"
    metadata = await b.get(f"/pypi/files/acme-shared/{DIST.wheel_filename}.metadata")
    assert metadata.status == 200 and await metadata.read() == DIST.metadata()
    root = await (await b.get("/pypi/simple/", headers=JSON_PAGE)).json()
    assert [p["name"] for p in root["projects"]] == ["Acme.Shared"]


async def test_a_yank_and_a_removal_through_the_cli_reach_every_replica(
        aiohttp_client: Any, shared: Callable[..., Settings], admin: Stores) -> None:
    a = await start_client(aiohttp_client, shared())
    assert (await upload(a, DIST)).status == 200
    admin.private.update("acme-shared", lambda p: p.with_yank({DIST.wheel_filename}, "broken"))

    async def yanked() -> bool:
        page = await (await a.get("/pypi/simple/acme-shared/", headers=JSON_PAGE)).json()
        return bool(page["files"] and page["files"][0].get("yanked") == "broken")

    await until(yanked, "A shows the yank made through the CLI")
    assert admin.shared is not None
    key = blob_key(hashlib.sha256(DIST.wheel()).hexdigest())
    assert admin.shared.objects.stat(key) == len(DIST.wheel())
    admin.private.remove_files("acme-shared", {DIST.wheel_filename})
    assert admin.shared.objects.stat(key) is None, "no row lists the blob: deleted"

    async def gone() -> bool:
        return await listed(a, "acme-shared") == []

    await until(gone, "A no longer lists the removed file")
    assert (await a.get(f"/pypi/files/acme-shared/{DIST.wheel_filename}")).status == 404


async def test_a_token_revoked_anywhere_is_refused_by_every_replica(
        aiohttp_client: Any, shared: Callable[..., Settings], admin: Stores) -> None:
    a = await start_client(aiohttp_client, shared())
    b = await start_client(aiohttp_client, shared())
    token_id, token = admin.auth.create_token("alice")
    headers = basic("__token__", token)
    assert (await upload(a, DIST, headers)).status == 200
    admin.auth.revoke_token(token_id)
    refused = await upload(b, Dist("Acme.Shared", "2.0"), headers)
    assert refused.status in (401, 403), await refused.text()
    assert (await upload(a, Dist("Acme.Shared", "2.0"), headers)).status in (401, 403)


async def test_streamed_files_answer_head_conditional_get_and_ranges(
        aiohttp_client: Any, shared: Callable[..., Settings]) -> None:
    a = await start_client(aiohttp_client, shared())
    assert (await upload(a, DIST)).status == 200
    url = f"/pypi/files/acme-shared/{DIST.wheel_filename}"
    data = DIST.wheel()
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    head = await a.head(url)
    assert head.status == 200 and int(head.headers["Content-Length"]) == len(data) and head.headers["ETag"] == etag
    assert (await a.get(url, headers={"If-None-Match": etag})).status == 304
    part = await a.get(url, headers={"Range": "bytes=10-19"})
    assert part.status == 206 and await part.read() == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    tail = await a.get(url, headers={"Range": "bytes=-5"})
    assert tail.status == 206 and await tail.read() == data[-5:]
    stale = await a.get(url, headers={"Range": "bytes=0-3", "If-Range": '"another"'})
    assert stale.status == 200 and await stale.read() == data
    beyond = await a.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status == 416 and beyond.headers["Content-Range"] == f"bytes */{len(data)}"


async def test_redirect_mode_answers_a_presigned_url_of_the_blob(
        aiohttp_client: Any, shared: Callable[..., Settings]) -> None:
    a = await start_client(aiohttp_client, shared(objects={"serve": "redirect", "presign_ttl": 60.0}))
    assert (await upload(a, DIST)).status == 200
    answer = await a.get(f"/pypi/files/acme-shared/{DIST.wheel_filename}", allow_redirects=False)
    assert answer.status == 302 and answer.headers["Cache-Control"] == "no-store"
    location = answer.headers["Location"]
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=60" in location
    async with aiohttp.ClientSession() as session, session.get(location) as fetched:
        assert fetched.status == 200 and await fetched.read() == DIST.wheel()


async def test_an_object_store_outage_is_a_503_naming_it_and_pages_still_answer(
        aiohttp_client: Any, shared: Callable[..., Settings], seaweedfs_outage: SeaweedFS) -> None:
    a = await start_client(aiohttp_client, shared())
    assert (await upload(a, DIST)).status == 200
    assert await listed(a, "acme-shared") == [DIST.wheel_filename]
    with seaweedfs_outage.stopped():
        down = await a.get(f"/pypi/files/acme-shared/{DIST.wheel_filename}")
        assert down.status == 503
        assert "object store s3://" in await down.text()
        assert await listed(a, "acme-shared") == [DIST.wheel_filename], "the page is held in memory"
        refused = await upload(a, Dist("Acme.Shared", "2.0"))
        assert refused.status == 503 and "object store" in await refused.text()
    assert await listed(a, "acme-shared") == [DIST.wheel_filename], "the refused upload left nothing listed"
    again = await a.get(f"/pypi/files/acme-shared/{DIST.wheel_filename}")
    assert again.status == 200 and await again.read() == DIST.wheel()


@pytest.mark.parametrize(("storage", "key"), [
    ({"database": "sqlite:///{tmp}/m.db"}, "storage.objects"),
    ({"objects": "file:///{tmp}/objects"}, "storage.database"),
])
def test_half_a_shared_mode_is_a_config_error_naming_the_missing_key(
        tmp_path: Path, storage: dict[str, str], key: str) -> None:
    settings = settings_from_mapping({"storage": {"data_dir": str(tmp_path),
                                                  **{k: v.format(tmp=tmp_path) for k, v in storage.items()}}})
    with pytest.raises(ConfigError) as error:
        open_stores(settings)
    assert error.value.key == key and "both [storage] database" in str(error.value)


@pytest.fixture
def sql_store(pg_url: str, tmp_path: Path) -> Iterator[SqlPrivateStorage]:
    """The shared mode's private store on PostgreSQL with its blobs in a file:// object store."""
    engine = open_engine(pg_url)
    upgrade(engine)
    objects = ObjectStore(ObjectStoreSettings(url=f"file://{tmp_path / 'objects'}"))
    store = SqlPrivateStorage(engine, ObjectBlobs(objects, tmp_path / "tmp"), tmp_path / "tmp")
    store.prepare()
    yield store
    objects.close()
    engine.dispose()


def test_bytes_two_projects_list_are_one_blob_deleted_with_the_last_row(sql_store: SqlPrivateStorage) -> None:
    assert isinstance(sql_store.blobs, ObjectBlobs)
    objects = sql_store.blobs.objects
    commit(sql_store, WHEEL, b"the same bytes")
    commit(sql_store, "other-1.0-py3-none-any.whl", b"the same bytes", project="other", display_name="Other")
    keys = [blob_key(hashlib.sha256(data).hexdigest()) for data in (b"the same bytes", METADATA)]
    sql_store.remove_files("demo", {WHEEL})
    assert [objects.stat(key) for key in keys] == [14, len(METADATA)], "another row still lists them"
    sql_store.release("other", with_files=True)
    assert [objects.stat(key) for key in keys] == [None, None]


async def test_a_page_version_never_repeats_for_another_state(sql_store: SqlPrivateStorage) -> None:
    """Serials start again when a released name is uploaded anew: a rendered copy of the old state
    (kept on disk by version) must not pass for the new one."""
    assert isinstance(sql_store.blobs, ObjectBlobs)
    with ThreadPoolExecutor(2) as executor:
        repository = SharedPrivateRepository(sql_store, sql_store.blobs.objects, ObjectStoreSettings(), executor)
        await repository.start()
        try:
            await asyncio.to_thread(commit, sql_store, WHEEL, b"first state")
            await repository.refresh()
            first = await repository.project_page("demo")
            await asyncio.to_thread(sql_store.release, "demo", True)
            await repository.refresh()
            assert not await repository.claims("demo")
            await asyncio.to_thread(commit, sql_store, WHEEL, b"other state")
            await repository.refresh()
            second = await repository.project_page("demo")
        finally:
            await repository.close()
    assert first.project is not None and second.project is not None
    assert first.project.serial == second.project.serial == 1
    assert first.version != second.version


async def test_a_removal_while_the_object_store_is_down_unlists_and_leaves_garbage(
        aiohttp_client: Any, shared: Callable[..., Settings], admin: Stores, seaweedfs_outage: SeaweedFS) -> None:
    a = await start_client(aiohttp_client, shared())
    assert (await upload(a, DIST)).status == 200
    with seaweedfs_outage.stopped():
        await asyncio.to_thread(admin.private.remove_files, "acme-shared", {DIST.wheel_filename})

        async def gone() -> bool:
            return await listed(a, "acme-shared") == []

        await until(gone, "A no longer lists the file removed while the store was down")
    assert admin.shared is not None
    key = blob_key(hashlib.sha256(DIST.wheel()).hexdigest())
    assert await asyncio.to_thread(admin.shared.objects.stat, key) == len(DIST.wheel()), "left for check --repair"
