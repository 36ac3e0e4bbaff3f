"""Real pip and uv, installing through a real ``pypi-proxy serve``, are sent gzip-coded index pages
(issue 11 B7): read from the server's access log, which names each response's Content-Encoding."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.builders import Dist
from tests.e2e.conftest import Server, UpstreamThread, installed_version, start_proxy, stop_proxy, tool
from tests.fakeupstream import FakeUpstream

pytestmark = pytest.mark.e2e
# Enough releases for the project page to be worth compressing (compression.MIN_BYTES).
RELEASES = [Dist("gzdemo", f"1.{minor}") for minor in range(8)]


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Server]:
    fake = FakeUpstream()
    for dist in RELEASES:
        fake.add(dist)
    upstream = UpstreamThread(fake)
    upstream.start()
    home = tmp_path / "home"
    home.mkdir()
    config = home / "config.toml"
    config.write_text(f'[upstream]\nurl = "{fake.url}"\n')
    server = start_proxy(home, "--config", str(config))
    try:
        yield server
    finally:
        stop_proxy(server.process)
        upstream.stop()
        upstream.close()


def access_lines(log: Path, start: int) -> list[dict[str, Any]]:
    """The access events written after byte ``start`` of the server's log."""
    with open(log, "rb") as handle:
        handle.seek(start)
        lines = handle.read().decode().splitlines()
    return [event for line in lines if '"event": "request"' in line and (event := json.loads(line))]


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_pip_and_uv_get_gzip_pages(proxy: Server, tmp_path: Path, installer: str) -> None:
    log = proxy.home / "server.log"
    start = log.stat().st_size
    target = tmp_path / "target"
    command = ([tool("python"), "-m", "pip"] if installer == "pip" else [tool("uv"), "pip"])
    proxy.run([*command, "install", "--target", str(target), "--index-url", proxy.simple, "gzdemo"])
    assert installed_version(target, "gzdemo") == "1.7"
    events = access_lines(log, start)
    pages = [e for e in events if e["path"] == "/pypi/simple/gzdemo/" and e["method"] == "GET"]
    assert pages and all(e["status"] == 200 and e["encoding"] == "gzip" for e in pages), pages
    files = [e for e in events if e["path"].startswith("/pypi/files/")]
    assert files and all(e["encoding"] is None for e in files), "distributions are never coded"
