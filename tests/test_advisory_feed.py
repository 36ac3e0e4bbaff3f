"""The advisory data feed (issue 15 item 1): OSV's bulk export over HTTP (conditional GET with
ETag/If-Modified-Since, RFC 9110 13.1), a local directory or zip of OSV records, stored as the
last good copy (atomic, bounded, one download for every worker), loaded as an AdvisoryIndex."""

from __future__ import annotations

import asyncio
import io
import json
import os
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from proxy.core.osv import AdvisoryIndex
from proxy.storage.advisories import AdvisoryStore, Limits
from proxy.upstream.advisories import AdvisoryFeed
from tests.fakeosv import FakeOSV, real_records, zip_of

FeedMaker = Callable[..., Awaitable[AdvisoryFeed]]


class Clock:
    """An injected clock (unix seconds) that tests move by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as pool:
        yield pool


@pytest.fixture
async def osv() -> AsyncIterator[FakeOSV]:
    server = FakeOSV(zip_of(real_records()))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "policy" / "osv"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make_feed(store_dir: Path, executor: ThreadPoolExecutor, clock: Clock) -> AsyncIterator[FeedMaker]:
    """Feeds on the store in ``store_dir`` (or the one given), closed at the end; started
    (the background loop running) only when asked: most tests drive ``refresh`` by hand."""
    feeds: list[AdvisoryFeed] = []

    async def make(source: str, store: AdvisoryStore | None = None, start: bool = False,
                   **options: Any) -> AdvisoryFeed:
        options = {"clock": clock, "read_timeout": 2.0, "deadline": 5.0, "refresh_every": 3600.0, **options}
        feed = AdvisoryFeed(source, store or AdvisoryStore(store_dir), executor, **options)
        feeds.append(feed)
        if start:
            await feed.start()
        return feed

    yield make
    for feed in feeds:
        await feed.close()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` (for what a background task does) until true; fail after ``timeout``."""
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def stored_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "download.lock")


def ids(index: AdvisoryIndex | None, project: str, version: str) -> list[str]:
    assert index is not None
    return [a.id for a in index.for_release(project, version)]


# -- the export over HTTP ------------------------------------------------------------------------

@pytest.mark.parametrize(("project", "version", "expected"), [
    # PYSEC and its GHSA alias (shared CVE): one advisory, the first by id
    ("requests", "2.19.0", ["GHSA-x84v-xcm2-53pg"]),
    ("requests", "2.20.0", []),
    # two ranges in one record (2.0-2.2, 2.25-2.32.0); 2.1 is also before 2.20.0
    ("requests", "2.1", ["GHSA-9wx4-h78v-vm56", "GHSA-x84v-xcm2-53pg"]),
    ("requests", "2.24.0", []),
    ("requests", "2.31.0", ["GHSA-9wx4-h78v-vm56"]),
    ("requests", "2.32.0", []),
    # last_affected is inclusive; a second range after it
    ("flask", "1.1.4", ["PYSEC-2023-100"]),
    ("flask", "1.1.5", []),
    ("flask", "2.2.4", ["PYSEC-2023-100"]),
    # withdrawn affects nothing; a GIT range beside an ECOSYSTEM one is ignored
    ("urllib3", "1.0", []),
    ("urllib3", "1.26.4", ["PYSEC-2021-59"]),
    ("urllib3", "1.26.5", []),
    ("colourama", "0.1.6", ["MAL-2022-4521"]),
])
async def test_the_export_is_downloaded_stored_and_loaded(make_feed: FeedMaker, osv: FakeOSV, project: str,
                                                          version: str, expected: list[str]) -> None:
    feed = await make_feed(osv.url)
    assert await feed.refresh() == "stored"
    assert ids(await feed.current(), project, version) == expected


async def test_severity_malice_and_status_come_from_the_records(make_feed: FeedMaker, osv: FakeOSV,
                                                                clock: Clock, store_dir: Path) -> None:
    import hashlib
    feed = await make_feed(osv.url)
    await feed.refresh()
    index = await feed.current()
    assert index is not None
    [credentials] = index.for_release("requests", "2.19.0")
    assert (credentials.severity.level, credentials.severity.score) == ("critical", 9.8)  # CVSS v3 over the label
    [session] = index.for_release("requests", "2.31.0")
    assert (session.severity.level, session.severity.score) == ("high", 8.8)  # CVSS v4 over "MODERATE"
    [malware] = index.for_release("colourama", "0.1.6")
    assert malware.malicious
    version = hashlib.sha256(osv.body).hexdigest()[:16]
    clock.now += 90
    status = feed.status()
    assert (status.source, status.records, status.version, status.last_error) == (osv.url, 7, version, None)
    assert (status.fetched_at, status.age_s) == (clock.now - 90, 90.0)
    assert stored_files(store_dir) == ["meta.json", f"osv-{version}.zip"]


@pytest.mark.parametrize("send_etag", [True, False], ids=["etag", "last-modified-only"])
async def test_a_second_refresh_is_conditional_and_a_304_renews_the_age(
        make_feed: FeedMaker, osv: FakeOSV, clock: Clock, send_etag: bool) -> None:
    osv.send_etag = send_etag
    feed = await make_feed(osv.url)
    assert await feed.refresh() == "stored"
    first = await feed.current()
    clock.now += 7200
    assert await feed.refresh() == "unchanged"
    conditional = osv.requests[-1]
    assert conditional.get("If-None-Match") == (osv.etag if send_etag else None)
    assert conditional["If-Modified-Since"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert await feed.current() is first  # nothing reloaded
    assert (feed.status().fetched_at, feed.status().age_s) == (clock.now, 0.0)
    assert first is not None and first.fetched_at == clock.now


async def test_a_changed_export_replaces_the_copy_and_the_index(make_feed: FeedMaker, osv: FakeOSV,
                                                                store_dir: Path) -> None:
    feed = await make_feed(osv.url)
    await feed.refresh()
    old = await feed.current()
    fixed = {**real_records()[3], "id": "PYSEC-2024-1", "affected": [
        {"package": {"ecosystem": "PyPI", "name": "flask"}, "ranges": [
            {"type": "ECOSYSTEM", "events": [{"introduced": "3.0"}, {"fixed": "3.0.3"}]}]}]}
    osv.publish(zip_of([*real_records(), fixed]), osv.last_modified + 3600)
    assert await feed.refresh() == "stored"
    assert osv.requests[-1]["If-None-Match"] != osv.etag  # it asked with the old validator
    new = await feed.current()
    assert old is not None and new is not None and new.version != old.version
    assert ids(new, "flask", "3.0.1") == ["PYSEC-2024-1"]
    assert ids(old, "flask", "3.0.1") == []
    assert stored_files(store_dir) == ["meta.json", f"osv-{new.version}.zip"]  # the old copy removed
    assert feed.status().records == 8


def bomb(member_bytes: int, members: int = 1) -> bytes:
    """Members of zeros: a few KB on the wire, ``member_bytes`` each once decompressed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("GHSA-real-real-real.json", json.dumps(real_records()[1]))
        for number in range(members):
            archive.writestr(f"BOMB-{number}.json", b"0" * member_bytes)
    return buffer.getvalue()


LIMITS = Limits(max_members=50, max_member_bytes=64 * 1024, max_total_bytes=256 * 1024,
                max_download_bytes=256 * 1024)


@pytest.mark.parametrize(("mode", "body", "error"), [
    ("error", None, "answered 500"),
    ("hang", None, "UpstreamTimeout"),
    ("stall", zip_of(real_records()[:3]), "UpstreamTimeout"),
    ("truncate", zip_of(real_records()[:3]), "UpstreamUnavailable"),
    ("ok", b"<html>Service unavailable</html>", "not a readable zip"),
    ("ok", zip_of([real_records()[0]])[:-40], "not a readable zip"),  # cut inside its central directory
    ("ok", zip_of([], {"notes.json": b'{"not": "osv"}', "broken.json": b"{"}), "no OSV record"),
    ("ok", bomb(10 * 1024**2), "max_member_bytes"),
    ("ok", bomb(60 * 1024, members=8), "max_total_bytes"),
    ("ok", zip_of([], {f"x{n}.json": b"{}" for n in range(60)}), "max_members"),
    ("ok", os.urandom(300 * 1024), "max_download_bytes"),
], ids=["500", "hang", "stall", "truncated", "html", "truncated-zip", "no-records", "bomb-member",
        "bomb-total", "too-many-members", "too-large"])
async def test_a_failed_refresh_keeps_the_old_copy(make_feed: FeedMaker, osv: FakeOSV, store_dir: Path,
                                                   clock: Clock, mode: str, body: bytes | None, error: str) -> None:
    feed = await make_feed(osv.url, AdvisoryStore(store_dir, LIMITS), read_timeout=0.3)
    assert await feed.refresh() == "stored"
    good = await feed.current()
    files = stored_files(store_dir)
    osv.mode = mode
    if body is not None:
        osv.publish(body, osv.last_modified + 60)
    clock.now += 3600
    assert await feed.refresh() == "failed"
    status = feed.status()
    assert status.last_error is not None and error in status.last_error
    assert (status.version, status.records, status.fetched_at) == (good.version if good else None, 7, clock.now - 3600)
    assert stored_files(store_dir) == files  # no temp file left, the copy untouched
    # a fresh worker (a restart) loads the old copy, and sees the failure
    other = await make_feed(osv.url, AdvisoryStore(store_dir, LIMITS))
    index = await other.current()
    assert index is not None and good is not None and index.version == good.version
    assert other.status().last_error == status.last_error


async def test_the_stored_copy_is_served_while_the_source_is_unreachable(
        make_feed: FeedMaker, osv: FakeOSV, clock: Clock) -> None:
    await (await make_feed(osv.url)).refresh()
    await osv.stop()
    clock.now += 86400
    restarted = await make_feed(osv.url)
    assert await restarted.refresh() == "failed"
    assert ids(await restarted.current(), "requests", "2.19.0") == ["GHSA-x84v-xcm2-53pg"]
    status = restarted.status()
    assert status.age_s == 86400.0 and status.last_error is not None and "UpstreamUnavailable" in status.last_error


async def test_bad_members_are_skipped_and_counted(make_feed: FeedMaker, osv: FakeOSV, store_dir: Path) -> None:
    extra = {"broken.json": b'{"id": "PYSEC-X", ', "not-osv.json": b'{"no": "id"}', "list.json": b"[1, 2]",
             "README.txt": b"not a record: ignored", "vulns/": b""}
    osv.publish(zip_of(real_records(), extra), osv.last_modified)
    feed = await make_feed(osv.url)
    assert await feed.refresh() == "stored"
    meta = json.loads((store_dir / "meta.json").read_text())
    assert (meta["records"], meta["skipped"]) == (7, 3)
    assert ids(await feed.current(), "requests", "2.19.0") == ["GHSA-x84v-xcm2-53pg"]


async def test_credentials_in_the_source_url_are_never_shown(make_feed: FeedMaker, osv: FakeOSV,
                                                             store_dir: Path) -> None:
    secret = osv.url.replace("http://", "http://user:s3cret@") + "?token=s3cret"
    feed = await make_feed(secret)
    assert await feed.refresh() == "stored"
    assert "s3cret" not in feed.status().source
    assert "s3cret" not in (store_dir / "meta.json").read_text()


async def test_the_environment_proxy_is_used(make_feed: FeedMaker, osv: FakeOSV,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """trust_env, as for the upstream index: HTTP_PROXY carries the request (here, to the fake)."""
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{osv.port}")
    feed = await make_feed("http://osv.invalid/PyPI/all.zip")
    assert await feed.refresh() == "stored"
    assert osv.requests[0]["Host"] == "osv.invalid"


# -- local sources -------------------------------------------------------------------------------

def write_tree(root: Path, records: list[dict[str, Any]]) -> None:
    """Records laid out as in an advisory-database checkout: vulns/<project>/<id>.json."""
    for item in records:
        name = item["affected"][0]["package"]["name"].lower()
        path = root / "vulns" / name / f"{item['id']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(item))


async def test_a_local_directory_is_read_and_reread_when_it_changes(make_feed: FeedMaker, tmp_path: Path,
                                                                   clock: Clock) -> None:
    source = tmp_path / "advisory-database"
    write_tree(source, real_records())
    (source / ".git").mkdir()
    (source / ".git" / "config.json").write_text("{}")  # hidden directories are not records
    feed = await make_feed(str(source))
    assert await feed.refresh() == "stored"
    assert ids(await feed.current(), "flask", "1.1.4") == ["PYSEC-2023-100"]
    assert feed.status().records == 7
    clock.now += 60
    assert await feed.refresh() == "unchanged"
    assert feed.status().fetched_at == clock.now
    changed = source / "vulns" / "flask" / "PYSEC-2023-100.json"
    record = json.loads(changed.read_text())
    record["affected"][0]["ranges"][0]["events"] = [{"introduced": "1.1.5"}, {"fixed": "1.2"}]
    changed.write_text(json.dumps(record))
    os.utime(changed, ns=(1, 1))  # a new mtime on any clock, and one before 1980 (zip cannot date it)
    assert await feed.refresh() == "stored"
    index = await feed.current()
    assert (ids(index, "flask", "1.1.4"), ids(index, "flask", "1.1.5")) == ([], ["PYSEC-2023-100"])


async def test_a_local_zip_is_read_and_reread_when_it_changes(make_feed: FeedMaker, tmp_path: Path) -> None:
    source = tmp_path / "all.zip"
    source.write_bytes(zip_of(real_records()[:2]))
    feed = await make_feed(str(source))
    assert await feed.refresh() == "stored"
    assert feed.status().records == 2
    assert await feed.refresh() == "unchanged"
    replacement = tmp_path / "new.zip"
    replacement.write_bytes(zip_of(real_records()))
    replacement.replace(source)
    assert await feed.refresh() == "stored"
    assert ids(await feed.current(), "colourama", "1.0") == ["MAL-2022-4521"]


async def test_a_missing_local_source_fails_and_says_so(make_feed: FeedMaker, tmp_path: Path) -> None:
    feed = await make_feed(str(tmp_path / "nowhere"))
    assert await feed.refresh() == "failed"
    assert await feed.current() is None
    error = feed.status().last_error
    assert error is not None and error.startswith("FileNotFoundError") and "nowhere" in error


# -- several workers, one store ------------------------------------------------------------------

async def test_two_workers_download_once_and_share_the_copy(make_feed: FeedMaker, osv: FakeOSV,
                                                            store_dir: Path) -> None:
    one = await make_feed(osv.url, AdvisoryStore(store_dir), start=True)
    two = await make_feed(osv.url, AdvisoryStore(store_dir), start=True)
    await until(lambda: one.status().version is not None or two.status().version is not None)
    first, second = await one.current(), await two.current()
    assert first is not None and second is not None and first.version == second.version
    assert len(osv.requests) == 1


async def test_a_worker_finding_the_lock_taken_skips_its_turn(make_feed: FeedMaker, osv: FakeOSV,
                                                              store_dir: Path) -> None:
    holder = AdvisoryStore(store_dir).download_lock()  # another worker, mid-download
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, holder.acquire)
    try:
        feed = await make_feed(osv.url)
        assert await feed.refresh() == "busy"
        assert osv.requests == []
    finally:
        await loop.run_in_executor(None, holder.release)
    assert await feed.refresh() == "stored"


class CountingStore(AdvisoryStore):
    """The real store, counting its loads."""

    loads = 0

    def load(self) -> AdvisoryIndex | None:
        self.loads += 1
        return super().load()


async def test_concurrent_callers_share_one_load(make_feed: FeedMaker, osv: FakeOSV, store_dir: Path) -> None:
    await (await make_feed(osv.url)).refresh()  # another worker stored it
    store = CountingStore(store_dir)
    feed = await make_feed(osv.url, store)
    indexes = await asyncio.gather(*(feed.current() for _ in range(8)))
    assert store.loads == 1 and all(index is indexes[0] is not None for index in indexes)
    assert await feed.current() is indexes[0] and store.loads == 1


async def test_the_loop_refreshes_on_schedule(make_feed: FeedMaker, osv: FakeOSV) -> None:
    feed = await make_feed(osv.url, start=True, refresh_every=0.05, clock=lambda: asyncio.get_running_loop().time())
    await until(lambda: len(osv.requests) >= 3)
    assert all(request["If-None-Match"] == osv.etag for request in osv.requests[1:])
    await feed.close()
    seen = len(osv.requests)
    await asyncio.sleep(0.2)  # nothing to await: the absence of requests after close is the point
    assert len(osv.requests) == seen


# -- crash safety --------------------------------------------------------------------------------

async def test_what_a_crash_leaves_is_ignored_then_swept(make_feed: FeedMaker, osv: FakeOSV, store_dir: Path,
                                                         clock: Clock) -> None:
    await (await make_feed(osv.url)).refresh()
    good = stored_files(store_dir)
    # a crash mid-download (a temp file) and after the zip's rename but before the meta (an orphan)
    (store_dir / ".tmp-abc123.zip").write_bytes(b"PK\x03\x04 half a zip")
    (store_dir / "osv-0123456789abcdef.zip").write_bytes(zip_of(real_records()[:1]))
    restarted = await make_feed(osv.url)
    index = await restarted.current()
    assert index is not None and f"osv-{index.version}.zip" in good and restarted.status().records == 7
    clock.now += 7200
    assert await restarted.refresh() == "unchanged"
    assert stored_files(store_dir) == good


async def test_a_stored_copy_whose_bytes_changed_is_not_loaded(make_feed: FeedMaker, osv: FakeOSV,
                                                               store_dir: Path) -> None:
    await (await make_feed(osv.url)).refresh()
    [copy] = store_dir.glob("osv-*.zip")
    copy.write_bytes(zip_of(real_records()[:1]))
    feed = await make_feed(osv.url)
    assert await feed.current() is None
    error = feed.status().last_error
    assert error is not None and "does not match its recorded sha256" in error
