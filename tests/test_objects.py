"""The object store (proxy/storage/objects.py, issue 14), against SeaweedFS over S3 and against a
file:// directory: verified puts that leave nothing behind when refused, reads with ranges,
listings, orphans, presigned URLs, and every failure of the store as one domain error."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from proxy.core.errors import ObjectIntegrityError, ObjectNotFound, ObjectStoreUnavailable, ProjectNotFound
from proxy.objectsettings import ObjectStoreSettings
from proxy.storage.objects import PART_SIZE, STREAM_CHUNK, ObjectStore, blob_key
from proxy.web.middlewares import request_context
from tests.s3server import SeaweedFS, free_ports
from tests.waiting import until

MiB = 1024 * 1024


@dataclass(frozen=True)
class Blob:
    path: Path
    data: bytes
    sha256: str

    @property
    def key(self) -> str:
        return blob_key(self.sha256)

    @property
    def size(self) -> int:
        return len(self.data)


def write_blob(directory: Path, data: bytes, name: str = "blob") -> Blob:
    path = directory / name
    path.write_bytes(data)
    return Blob(path, data, hashlib.sha256(data).hexdigest())


@pytest.fixture(params=["s3", "file"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStoreSettings:
    """An empty object store: a new SeaweedFS bucket, or a directory."""
    if request.param == "s3":
        settings: ObjectStoreSettings = request.getfixturevalue("s3_settings")
        return settings
    return ObjectStoreSettings(url=f"file://{tmp_path / 'objects'}")


@pytest.fixture
def objects(store_settings: ObjectStoreSettings) -> Iterator[ObjectStore]:
    store = ObjectStore(store_settings)
    yield store
    store.close()


async def read(objects: ObjectStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    stream = await objects.open(key, start, end)
    return b"".join([chunk async for chunk in stream])


async def stored(objects: ObjectStore, prefix: str = "") -> dict[str, int]:
    """Every key under ``prefix`` with its size."""
    return {info.key: info.size async for info in objects.list(prefix)}


def bucket_of(settings: ObjectStoreSettings) -> str:
    return str(settings.url).removeprefix("s3://").split("/")[0]


def assert_nothing_pending(request: pytest.FixtureRequest, objects: ObjectStore) -> None:
    """No multipart upload was left open in SeaweedFS (an aborted one is gone)."""
    if objects.settings.is_s3:
        seaweedfs: SeaweedFS = request.getfixturevalue("seaweedfs")
        assert seaweedfs.pending_uploads(bucket_of(objects.settings)) == []


@pytest.mark.parametrize("digest", ["", "0" * 63, "0" * 65, "A" * 64, "g" * 64, "../" + "0" * 61])
def test_only_a_sha256_makes_a_key(digest: str) -> None:
    with pytest.raises(ValueError, match="not a sha256"):
        blob_key(digest)


def test_keys_are_content_addressed_with_two_levels_of_fan_out() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    assert blob_key(digest) == f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"


@pytest.mark.parametrize("size", [0, 1, 100_000])
async def test_a_put_file_reads_back_whole(objects: ObjectStore, tmp_path: Path, size: int) -> None:
    blob = write_blob(tmp_path, os.urandom(size))
    await objects.put_file_async(blob.key, blob.path, blob.sha256, blob.size)
    assert await objects.head(blob.key) == size
    stream = await objects.open(blob.key)
    assert (stream.size, stream.start, stream.end) == (size, 0, size)
    assert b"".join([chunk async for chunk in stream]) == blob.data
    assert await stored(objects) == {blob.key: size}


@pytest.mark.parametrize("size", [1000, 2 * PART_SIZE + 123], ids=["one-put", "multipart"])
async def test_bytes_that_do_not_hash_to_the_sha256_leave_nothing(
        request: pytest.FixtureRequest, objects: ObjectStore, tmp_path: Path, size: int) -> None:
    blob = write_blob(tmp_path, os.urandom(size))
    claimed = hashlib.sha256(b"other bytes").hexdigest()
    with pytest.raises(ObjectIntegrityError) as refused:
        await objects.put_file_async(blob_key(claimed), blob.path, claimed, size)
    assert (refused.value.expected, refused.value.found) == ((claimed, size), (blob.sha256, size))
    assert refused.value.key == blob_key(claimed) and blob.sha256 in str(refused.value)
    assert await objects.head(blob_key(claimed)) is None
    assert await stored(objects) == {}
    assert_nothing_pending(request, objects)


@pytest.mark.parametrize(("actual", "claimed"), [
    (1000, 1001), (1000, 999), (PART_SIZE + 20, PART_SIZE + 30), (PART_SIZE + 20, PART_SIZE + 10),
], ids=["short", "long", "multipart-short", "multipart-long"])
async def test_bytes_that_do_not_count_the_size_leave_nothing(
        request: pytest.FixtureRequest, objects: ObjectStore, tmp_path: Path, actual: int, claimed: int) -> None:
    blob = write_blob(tmp_path, os.urandom(actual))
    with pytest.raises(ObjectIntegrityError, match=f"bytes, not {claimed}") as refused:
        await objects.put_file_async(blob.key, blob.path, blob.sha256, claimed)
    # A file longer than claimed is refused with the chunk that passes the size, before it is all
    # hashed (here the last chunk: the count is the whole file's).
    assert refused.value.found == ((blob.sha256, actual) if actual < claimed else (None, actual))
    assert await stored(objects) == {}
    assert_nothing_pending(request, objects)


async def test_putting_a_stored_blob_again_keeps_it(objects: ObjectStore, tmp_path: Path) -> None:
    blob = write_blob(tmp_path, os.urandom(5000))
    await objects.put_file_async(blob.key, blob.path, blob.sha256, blob.size)
    await objects.put_file_async(blob.key, blob.path, blob.sha256, blob.size)
    assert await stored(objects) == {blob.key: blob.size}
    # The file is verified even when the blob is there already; the stored one is untouched.
    impostor = write_blob(tmp_path, os.urandom(5000), "impostor")
    with pytest.raises(ObjectIntegrityError):
        await objects.put_file_async(blob.key, impostor.path, blob.sha256, blob.size)
    assert await read(objects, blob.key) == blob.data


async def test_an_old_blob_put_again_is_rewritten_so_a_sweep_spares_it(tmp_path: Path) -> None:
    """The file:// store's ETag changes with each write (inode, mtime), which shows the rewrite."""
    settings = ObjectStoreSettings(url=f"file://{tmp_path / 'objects'}")
    blob = write_blob(tmp_path, os.urandom(5000))
    fresh, stale = ObjectStore(settings), ObjectStore(settings, reuse_within=0)
    try:
        await fresh.put_file_async(blob.key, blob.path, blob.sha256, blob.size)
        first = (await fresh.open(blob.key)).etag
        await fresh.put_file_async(blob.key, blob.path, blob.sha256, blob.size)
        assert (await fresh.open(blob.key)).etag == first
        await stale.put_file_async(blob.key, blob.path, blob.sha256, blob.size)
        assert (await fresh.open(blob.key)).etag != first
        assert await read(fresh, blob.key) == blob.data
    finally:
        fresh.close()
        stale.close()


DATA = bytes(range(256)) * 40  # 10,240 bytes


@pytest.mark.parametrize(("start", "end"), [
    (0, None), (0, 1), (1, None), (10, 20), (len(DATA) - 1, None), (5000, len(DATA)), (3, len(DATA) + 100),
])
async def test_ranges(objects: ObjectStore, tmp_path: Path, start: int, end: int | None) -> None:
    blob = write_blob(tmp_path, DATA)
    await objects.put_file_async(blob.key, blob.path, blob.sha256, blob.size)
    stream = await objects.open(blob.key, start, end)
    expected = DATA[start:end]
    assert (stream.size, stream.start, stream.end) == (len(DATA), start, start + len(expected))
    assert b"".join([chunk async for chunk in stream]) == expected


@pytest.mark.parametrize(("start", "end"), [(len(DATA), None), (len(DATA) + 5, None), (5, 5), (7, 3), (-1, None)])
async def test_empty_ranges_and_ranges_past_the_end_are_refused(
        objects: ObjectStore, tmp_path: Path, start: int, end: int | None) -> None:
    blob = write_blob(tmp_path, DATA)
    await objects.put_file_async(blob.key, blob.path, blob.sha256, blob.size)
    with pytest.raises(ValueError, match="range"):
        await objects.open(blob.key, start, end)


async def test_a_missing_key_is_not_found_not_unavailable(objects: ObjectStore) -> None:
    key = blob_key(hashlib.sha256(b"never stored").hexdigest())
    with pytest.raises(ObjectNotFound) as missing:
        await objects.open(key)
    assert isinstance(missing.value, ProjectNotFound) and missing.value.key == key
    assert await objects.head(key) is None
    await objects.delete(key)  # nothing to delete is no error


async def test_delete(objects: ObjectStore, tmp_path: Path) -> None:
    kept, gone = write_blob(tmp_path, b"kept", "a"), write_blob(tmp_path, b"gone", "b")
    for blob in (kept, gone):
        await objects.put_file_async(blob.key, blob.path, blob.sha256, blob.size)
    await objects.delete(gone.key)
    assert await objects.head(gone.key) is None
    with pytest.raises(ObjectNotFound):
        await objects.open(gone.key)
    assert await stored(objects) == {kept.key: 4}


async def test_listing_by_prefix_takes_whole_segments(objects: ObjectStore, tmp_path: Path) -> None:
    blobs = [write_blob(tmp_path, f"blob {n}".encode(), str(n)) for n in range(6)]
    for blob in blobs:
        await objects.put_file_async(blob.key, blob.path, blob.sha256, blob.size)
    everything = {blob.key: blob.size for blob in blobs}
    assert await stored(objects) == everything
    assert await stored(objects, "sha256") == everything
    fan_out = blobs[0].key[:len("sha256/ab")]
    assert await stored(objects, fan_out) == {k: v for k, v in everything.items() if k.startswith(fan_out + "/")}
    assert await stored(objects, fan_out[:-1]) == {}  # "sha256/a" is no segment of any key
    assert await stored(objects, "elsewhere") == {}


async def test_orphans_are_old_unreferenced_blobs_and_a_sweep_deletes_them(
        objects: ObjectStore, tmp_path: Path) -> None:
    used, unused, other = (write_blob(tmp_path, name.encode(), name) for name in ("used", "unused", "other"))
    for blob in (used, unused):
        await objects.put_file_async(blob.key, blob.path, blob.sha256, blob.size)
    await objects.put_file_async("elsewhere/other", other.path, other.sha256, other.size)  # not a blob
    referenced = {used.key}
    assert [info.key async for info in objects.orphans(referenced, grace=0)] == [unused.key]
    # Within the grace period an unreferenced blob may be an upload about to commit: kept.
    assert [info async for info in objects.orphans(referenced)] == []
    assert await objects.sweep(referenced) == 0
    assert await objects.sweep(referenced, grace=0) == 1
    assert await stored(objects) == {used.key: used.size, "elsewhere/other": other.size}


async def test_a_presigned_url_serves_the_blob_until_it_expires(
        s3_settings: ObjectStoreSettings, tmp_path: Path) -> None:
    objects = ObjectStore(s3_settings)
    blob = write_blob(tmp_path, os.urandom(3000))
    try:
        await objects.put_file_async(blob.key, blob.path, blob.sha256, blob.size)
        url = await objects.presigned_url(blob.key, 600)
        expiring = await objects.presigned_url(blob.key, 1)
        other = await objects.presigned_url(blob_key(hashlib.sha256(b"x").hexdigest()), 600)
    finally:
        objects.close()
    signature = url.rsplit("X-Amz-Signature=", 1)[1]
    tampered_signature = url.replace(signature, signature[::-1])
    other_key_same_signature = other.split("X-Amz-Signature=")[0] + "X-Amz-Signature=" + signature
    longer = url.replace("X-Amz-Expires=600", "X-Amz-Expires=6000")
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            assert (response.status, await response.read()) == (200, blob.data)
        for forged in (tampered_signature, other_key_same_signature, longer):
            async with session.get(forged) as response:
                assert response.status == 403, forged

        async def refused() -> bool:
            async with session.get(expiring) as response:
                return response.status == 403

        await until(refused, "a presigned URL refused once its second is over", within=10)


async def test_a_file_store_cannot_presign(tmp_path: Path) -> None:
    objects = ObjectStore(ObjectStoreSettings(url=f"file://{tmp_path}"))
    try:
        with pytest.raises(ValueError, match="needs an s3:// store"):
            await objects.presigned_url(blob_key("0" * 64), 60)
    finally:
        objects.close()


async def test_a_stopped_store_is_unavailable_and_whole_again_when_back(
        seaweedfs_outage: SeaweedFS, s3_settings: ObjectStoreSettings, tmp_path: Path) -> None:
    objects = ObjectStore(s3_settings)
    blob, late = write_blob(tmp_path, os.urandom(2000)), write_blob(tmp_path, os.urandom(2000), "late")
    try:
        await objects.put_file_async(blob.key, blob.path, blob.sha256, blob.size)
        with seaweedfs_outage.stopped():
            attempts = [lambda: objects.head(blob.key), lambda: objects.open(blob.key),
                        lambda: objects.delete(blob.key), lambda: stored(objects), objects.check,
                        lambda: objects.put_file_async(late.key, late.path, late.sha256, late.size)]
            for attempt in attempts:
                with pytest.raises(ObjectStoreUnavailable) as down:
                    await attempt()
                assert down.value.store == objects.name and objects.name in str(down.value)
                assert seaweedfs_outage.endpoint in objects.name
        assert await read(objects, blob.key) == blob.data
        assert await objects.head(late.key) is None
    finally:
        objects.close()


@pytest.mark.parametrize("problem", ["closed-port", "wrong-secret", "no-bucket"])
async def test_a_store_that_cannot_answer_is_unavailable_with_the_reason(
        seaweedfs: SeaweedFS, s3_settings: ObjectStoreSettings, problem: str) -> None:
    settings, reason = {
        "closed-port": (seaweedfs.settings("any-bucket", endpoint=f"http://127.0.0.1:{free_ports(1)[0]}"),
                        "error sending request"),
        "wrong-secret": (seaweedfs.settings(bucket_of(s3_settings), secret_access_key="wrong"),
                         "check the credentials"),
        "no-bucket": (seaweedfs.settings("no-such-bucket"), "the bucket does not exist"),
    }[problem]
    objects = ObjectStore(settings)
    try:
        with pytest.raises(ObjectStoreUnavailable, match=reason) as down:
            await objects.check()
        assert down.value.store == f"{settings.url} at {settings.endpoint}"
    finally:
        objects.close()


async def test_a_large_file_goes_up_in_parts_and_comes_down_in_chunks(objects: ObjectStore, tmp_path: Path) -> None:
    blob = write_blob(tmp_path, os.urandom(20 * MiB))
    await objects.put_file_async(blob.key, blob.path, blob.sha256, blob.size)
    stream = await objects.open(blob.key)
    if objects.settings.is_s3:  # S3's ETag of a multipart object: "<md5 of the parts' md5s>-<parts>"
        assert stream.etag is not None and stream.etag.strip('"').endswith(f"-{-(-blob.size // PART_SIZE)}")
    digest, sizes = hashlib.sha256(), []
    async for chunk in stream:
        digest.update(chunk)
        sizes.append(len(chunk))
    assert digest.hexdigest() == blob.sha256 and sum(sizes) == blob.size
    assert max(sizes) <= 4 * STREAM_CHUNK


CHILD = """
import asyncio, json, sys
from pathlib import Path
from proxy.objectsettings import ObjectStoreSettings
from proxy.storage.objects import ObjectStore

def peak() -> int:  # the process's peak resident memory, bytes
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))

async def main(settings, path, key, sha256, size):
    objects = ObjectStore(ObjectStoreSettings(**settings))
    await objects.head(key)  # warm: the client, its threads and connections exist before measuring
    before = peak()
    await objects.put_file_async(key, Path(path), sha256, size)
    read = 0
    async for chunk in await objects.open(key):
        read += len(chunk)
    print(json.dumps({"grew": peak() - before, "read": read}))
    objects.close()

asyncio.run(main(*json.loads(sys.argv[1])))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak memory from /proc (Linux)")
def test_a_large_file_is_never_held_whole_in_memory(store_settings: ObjectStoreSettings, tmp_path: Path) -> None:
    """A put and a read of 64 MiB in a fresh process grow its peak memory by far less than 64 MiB."""
    blob = write_blob(tmp_path, os.urandom(64 * MiB))
    arguments = [asdict(store_settings), str(blob.path), blob.key, blob.sha256, blob.size]
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(arguments)], capture_output=True, text=True,
                           timeout=300, check=False)
    assert child.returncode == 0, child.stderr
    measured = json.loads(child.stdout.splitlines()[-1])
    assert measured["read"] == blob.size
    assert measured["grew"] < 40 * MiB, measured


@pytest.mark.parametrize(("error", "status", "text"), [
    (ObjectStoreUnavailable("s3://bucket/prefix at http://store:9000", "GET: HTTP 500 Internal Server Error"),
     503, "The object store s3://bucket/prefix at http://store:9000 is unavailable (GET: HTTP 500"),
    (ObjectNotFound("s3://bucket/prefix at http://store:9000", "sha256/ab/cd/abcd"), 404,
     "the object store has no object sha256/ab/cd/abcd\n"),
    (ObjectIntegrityError("sha256/ab/cd/abcd", ("abcd", 10), (None, 11)), 500, "11 or more bytes, not 10"),
])
async def test_the_store_s_errors_as_http_answers(
        aiohttp_client: object, error: Exception, status: int, text: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        raise error

    app = web.Application(middlewares=[request_context])
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)  # type: ignore[operator]
    response = await client.get("/")
    assert response.status == status
    body = await response.text()
    assert text in body
    assert ("store:9000" in body) == (status == 503)  # the address is told only when the store fails
