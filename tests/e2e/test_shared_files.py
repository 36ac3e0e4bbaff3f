"""The shared tier of cached public files with replicas as real processes (issue 14): two
`pypi-proxy serve` on one PostgreSQL database and one SeaweedFS bucket, in front of a slow fake
upstream. Replica A is killed with SIGKILL in the middle of a cold download that B waits for: its
session ends, PostgreSQL releases its lock, B takes the download over and serves the complete,
verified file; A restarted serves it from the object store without asking upstream again."""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.objectsettings import ObjectStoreSettings, flatten
from proxy.storage.atomic import TEMP_PREFIX
from tests.builders import Dist
from tests.e2e.conftest import Server, UpstreamThread, installed_version, start_proxy, stop_proxy, tool
from tests.e2e.test_replicas import cli, toml_value
from tests.fakeupstream import FakeFile, FakeUpstream
from tests.pgserver import PgCluster
from tests.waiting import until_sync

pytestmark = pytest.mark.e2e
# 2 MiB in 16 KiB pieces 40 ms apart: about 5 s, long enough to kill A in the middle of it.
SLOW = FakeFile("slowpkg-1.0.tar.gz", os.urandom(2 * 1024 * 1024))
COLD = Dist("coldpkg", "1.0", requires_python=">=3.8")


@pytest.fixture
def upstream() -> Iterator[UpstreamThread]:
    fake = FakeUpstream()
    fake.add_file("slowpkg", SLOW)
    fake.add(COLD, sdist=False)
    fake.bad.file_chunk_size, fake.bad.file_chunk_pause = 16 * 1024, 0.04
    thread = UpstreamThread(fake)
    thread.start()
    yield thread
    thread.stop()
    thread.close()


@pytest.fixture
def config(tmp_path: Path, pg_cluster: PgCluster, s3_settings: ObjectStoreSettings,
           upstream: UpstreamThread) -> Path:
    database = pg_cluster.url(pg_cluster.create_database())
    values = {"database": database, **flatten(s3_settings)}
    path = tmp_path / "shared.toml"
    path.write_text("[storage]\n" + "".join(f"{key} = {toml_value(value)}\n" for key, value in values.items())
                    + f"[upstream]\nurl = {toml_value(upstream.upstream.url)}\n")
    cli(tmp_path, "db", "upgrade", "--config", str(path))
    return path


def replica(root: Path, name: str, config: Path) -> Server:
    home = root / name
    home.mkdir(exist_ok=True)
    return start_proxy(home, "--config", str(config))


class Fetch(threading.Thread):
    """A GET in the background: its status and body, or the error that broke it."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.status: int | None = None
        self.body = b""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=60) as response:
                self.status = int(response.status)
                self.body = response.read()
        except Exception as exc:  # A killed under it: a reset, or IncompleteRead (not an OSError)
            self.error = exc


def part_size(server: Server) -> int:
    """Bytes in the server's download in progress (its part file), 0 when there is none."""
    parts = list((server.home / "data" / "cache" / "tmp").glob(f"{TEMP_PREFIX}part-*"))
    return max((p.stat().st_size for p in parts), default=0)


def log_of(server: Server) -> str:
    return (server.home / "server.log").read_text(errors="replace")


def test_a_replica_killed_mid_download_loses_nothing(
        config: Path, upstream: UpstreamThread, tmp_path: Path) -> None:
    fake = upstream.upstream
    path = f"/files/{SLOW.filename}"
    a, b = replica(tmp_path, "a", config), replica(tmp_path, "b", config)
    try:
        on_a = Fetch(f"{a.url}/pypi/files/slowpkg/{SLOW.filename}")
        on_a.start()
        until_sync(lambda: 0 < part_size(a), "A's download under way")
        on_b = Fetch(f"{b.url}/pypi/files/slowpkg/{SLOW.filename}")
        on_b.start()
        until_sync(lambda: "shared_file_waiting" in log_of(b), "B waits for A's download")
        assert part_size(a) < len(SLOW.content), "A is killed before its download ends"
        a.process.kill()
        a.process.wait(timeout=30)
        on_b.join(timeout=60)
        on_a.join(timeout=60)
        assert on_b.status == 200 and hashlib.sha256(on_b.body).hexdigest() == SLOW.sha256
        assert on_a.error is not None, "A's client never saw a clean end of the broken download"
        assert fake.requests[path] == 2, "A's broken download and B's, no more"
        until_sync(lambda: "shared_file_published" in log_of(b), "B shared the file", within=30)
        a = replica(tmp_path, "a", config)  # the same data dir, with A's part file left in it
        again = Fetch(f"{a.url}/pypi/files/slowpkg/{SLOW.filename}")
        again.run()
        assert again.status == 200 and hashlib.sha256(again.body).hexdigest() == SLOW.sha256
        assert fake.requests[path] == 2, "A restarted read the object store"
    finally:
        for server in (a, b):
            if server.process.poll() is None:
                stop_proxy(server.process)


def test_pip_on_a_and_uv_on_b_at_once_cost_one_upstream_request_per_file(
        config: Path, upstream: UpstreamThread, tmp_path: Path) -> None:
    fake = upstream.upstream
    a, b = replica(tmp_path, "a", config), replica(tmp_path, "b", config)
    try:
        installs = [
            threading.Thread(target=a.run, args=([tool("python"), "-m", "pip", "install", "--target",
                                                  str(tmp_path / "pip"), "--index-url", a.simple, "coldpkg"],)),
            threading.Thread(target=b.run, args=([tool("uv"), "pip", "install", "--target", str(tmp_path / "uv"),
                                                  "--index-url", b.simple, "coldpkg"],)),
        ]
        for install in installs:
            install.start()
        for install in installs:
            install.join(timeout=180)
        assert installed_version(tmp_path / "pip", "coldpkg") == "1.0"
        assert installed_version(tmp_path / "uv", "coldpkg") == "1.0"
        wheel = f"/files/{COLD.wheel_filename}"
        assert fake.requests[wheel] == 1, "one upstream fetch of the wheel for both replicas"
        assert fake.requests[f"{wheel}.metadata"] == 1, "and one of its core metadata (PEP 658)"
    finally:
        stop_proxy(a.process)
        stop_proxy(b.process)
