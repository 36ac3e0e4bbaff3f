"""Real pip and uv install from stale pages while upstream stalls (issue 11, B1): before, every page
waited upstream's 30 s read timeout, so pip (15 s timeout) and uv failed although everything
they needed was cached. Shipped defaults but fresh_for, so the test shows what users get."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import Dist
from tests.e2e.conftest import Server, UpstreamThread, installed_version, start_proxy, stop_proxy, tool
from tests.fakeupstream import FakeUpstream

pytestmark = pytest.mark.e2e

PACKAGES = [Dist("demo", "1.0", requires_dist=["dep>=2"]), Dist("dep", "2.0", requires_dist=["leaf"]),
            Dist("leaf", "3.1")]
EXPECTED = {"demo": "1.0", "dep": "2.0", "leaf": "3.1"}


@pytest.fixture
def upstream() -> Iterator[UpstreamThread]:
    fake = FakeUpstream()
    for dist in PACKAGES:
        fake.add(dist)
    thread = UpstreamThread(fake)
    thread.start()
    yield thread
    thread.stop()
    thread.close()


@pytest.fixture
def proxy(upstream: UpstreamThread, tmp_path: Path) -> Iterator[Server]:
    home = tmp_path / "home"
    home.mkdir()
    config = home / "config.toml"
    config.write_text(f'[upstream]\nurl = "{upstream.upstream.url}"\nfresh_for = 0\n')
    server = start_proxy(home, "--config", str(config))
    yield server
    stop_proxy(server.process)


def install(proxy: Server, installer: str, target: Path) -> float:
    args = ([tool("python"), "-m", "pip", "install"] if installer == "pip" else [tool("uv"), "pip", "install"])
    started = time.perf_counter()
    proxy.run([*args, "--target", str(target), "--index-url", proxy.simple, "demo"])
    return time.perf_counter() - started


@pytest.mark.parametrize("stall", ["hang", "hang_body", "trickle"])
def test_pip_and_uv_install_from_stale_pages_while_upstream_stalls(
        stall: str, upstream: UpstreamThread, proxy: Server, tmp_path: Path) -> None:
    install(proxy, "pip", tmp_path / "cold")  # pages and files cached
    upstream.upstream.bad.page_stall = stall
    upstream.upstream.bad.trickle_every = 1.0
    for installer in ("pip", "uv"):
        seconds = install(proxy, installer, tmp_path / installer)
        assert {name: installed_version(tmp_path / installer, name) for name in EXPECTED} == EXPECTED
        # One stale bound (0.5 s) at most, then no page waits: far from pip's 15 s timeout.
        assert seconds < 8, f"{installer} took {seconds:.1f} s"
    log = (proxy.home / "server.log").read_text()
    assert log.count("upstream_slow_stale_served") == 1, "only the first stale page waited"
    with urllib.request.urlopen(f"{proxy.url}/-/metrics") as answer:
        metrics = answer.read().decode()
    stale = next(line for line in metrics.splitlines() if line.startswith('pypi_proxy_cache_total{kind="page",outcome="stale"}'))
    assert float(stale.split()[-1]) >= 6  # three pages, two installers
