"""Real pip and uv install public packages through the proxy from a fake upstream, then again
with the upstream gone (issue 3: one index-url serves everything, also while upstream is down)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import Dist
from tests.e2e.conftest import PASSWORD, Server, UpstreamThread, installed_version, start_proxy, stop_proxy, tool
from tests.fakeupstream import FakeUpstream

pytestmark = pytest.mark.e2e

# demo needs dep, dep needs leaf: a resolver has to walk the chain through the proxy.
PACKAGES = [
    Dist("demo", "0.9"),
    Dist("demo", "1.0", requires_dist=["dep>=2"]),
    Dist("dep", "1.0"),
    Dist("dep", "2.0", requires_dist=["leaf"]),
    Dist("leaf", "3.1"),
]
EXPECTED = {"demo": "1.0", "dep": "2.0", "leaf": "3.1"}


@pytest.fixture
def upstream(request: pytest.FixtureRequest) -> Iterator[UpstreamThread]:
    """The fake PyPI; parametrized indirectly with (flavour, offers PEP 658 metadata files)."""
    flavour, metadata = getattr(request, "param", ("both", True))
    fake = FakeUpstream(flavour=flavour)
    for dist in PACKAGES:
        fake.add(dist, metadata=metadata)
    thread = UpstreamThread(fake)
    thread.start()
    yield thread
    thread.stop()
    thread.close()


@pytest.fixture
def proxy(upstream: UpstreamThread, tmp_path: Path) -> Iterator[Server]:
    """The proxy in front of the fake upstream; pages go stale at once, so every later request
    asks upstream again and, once upstream is gone, is answered from the stale cache."""
    home = tmp_path / "home"
    home.mkdir()
    config = home / "config.toml"
    config.write_text(f'[upstream]\nurl = "{upstream.upstream.url}"\nfresh_for = 0\nretries = 0\n')
    server = start_proxy(home, "--config", str(config))
    yield server
    stop_proxy(server.process)


def installed(target: Path) -> dict[str, str]:
    return {name: installed_version(target, name) for name in EXPECTED}


def pip(proxy: Server, target: Path) -> float:
    started = time.perf_counter()
    proxy.run([tool("python"), "-m", "pip", "install", "--target", str(target), "--index-url", proxy.simple, "demo"])
    return time.perf_counter() - started


def uv(proxy: Server, target: Path) -> float:
    started = time.perf_counter()
    proxy.run([tool("uv"), "pip", "install", "--target", str(target), "--index-url", proxy.simple, "demo"])
    return time.perf_counter() - started


INSTALLERS = {"pip": pip, "uv": uv}


def full_downloads(fake: FakeUpstream) -> dict[str, int]:
    """Whole-file requests of wheels (byte-range reads of their metadata left out)."""
    return {k: n - fake.range_requests[k] for k, n in fake.requests.items()
            if k.endswith(".whl") and n > fake.range_requests[k]}


@pytest.mark.parametrize("upstream", [("both", True), ("html", False)], indirect=True,
                         ids=["pep658-upstream", "html-upstream-without-metadata"])
@pytest.mark.parametrize("first", ["pip", "uv"])
def test_install_through_the_proxy_then_again_with_upstream_stopped(
        first: str, upstream: UpstreamThread, proxy: Server, tmp_path: Path,
        record_property: pytest.RecordProperty) -> None:
    """The first install fills the cache (cold); later ones, by either client, are served from it
    (warm), and still succeed once upstream is down: stale pages and cached files. Against an
    upstream without PEP 658 files, the clients resolve with the metadata the proxy extracts."""
    timings = {f"{first}_cold": INSTALLERS[first](proxy, tmp_path / "cold")}
    assert installed(tmp_path / "cold") == EXPECTED
    downloads = upstream.upstream.requests.copy()
    wheels = {f"/files/{name}-{version}-py3-none-any.whl": 1 for name, version in EXPECTED.items()}
    assert full_downloads(upstream.upstream) == wheels, downloads

    for name, install in INSTALLERS.items():
        timings[f"{name}_warm"] = install(proxy, tmp_path / f"{name}-warm")
        assert installed(tmp_path / f"{name}-warm") == EXPECTED
    files_now = {k: n for k, n in upstream.upstream.requests.items() if k.startswith("/files/")}
    assert files_now == {k: n for k, n in downloads.items() if k.startswith("/files/")}, \
        "warm installs must take every file from the proxy's cache"

    upstream.stop()
    for name, install in INSTALLERS.items():
        timings[f"{name}_upstream_down"] = install(proxy, tmp_path / f"{name}-offline")
        assert installed(tmp_path / f"{name}-offline") == EXPECTED
    assert "upstream_stale_served" in (proxy.home / "server.log").read_text()

    for name, seconds in timings.items():
        record_property(f"{name}_s", round(seconds, 3))
    print("install wall times (s):", {name: round(seconds, 2) for name, seconds in timings.items()})


def test_a_private_upload_shadows_the_public_project_for_pip(upstream: UpstreamThread, proxy: Server,
                                                            tmp_path: Path) -> None:
    """Dependency confusion: once `dep` is private, pip cannot get upstream's dep 2.0, so demo 1.0
    (which needs dep>=2) is unresolvable and pip falls back to demo 0.9."""
    proxy.run([tool("pypi-proxy"), "user", "add", "--data-dir", str(proxy.home / "data"), "alice",
               "--password-stdin"], stdin=PASSWORD + "\n")
    (wheel,) = Dist("dep", "1.5").write(tmp_path / "dist", sdist=False)
    proxy.run([tool("twine"), "upload", "--repository-url", proxy.upload_url, "-u", "alice", "-p", PASSWORD,
               str(wheel)])
    proxy.run([tool("python"), "-m", "pip", "install", "--target", str(tmp_path / "t"), "--index-url",
               proxy.simple, "demo", "dep"])
    assert installed_version(tmp_path / "t", "dep") == "1.5"
    assert installed_version(tmp_path / "t", "demo") == "0.9"


@pytest.mark.parametrize("upstream", [("both", True), ("html", False), ("json", False)], indirect=True,
                         ids=["pep658-upstream", "html-upstream-without-metadata", "json-upstream-without-metadata"])
def test_warm_cli_prefills_the_cache_then_pip_installs_with_upstream_down(
        upstream: UpstreamThread, proxy: Server, tmp_path: Path) -> None:
    """`pypi-proxy warm -r requirements.txt` follows dependencies through PEP 658 metadata, which
    the proxy offers also when upstream has none (devpi, Nexus, HTML mirrors); a second run
    downloads nothing; afterwards the closure installs with upstream gone (issue 4)."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# the app\ndemo>=1.0 ; python_version >= '3.8'\nnever-needed ; python_version < '3'\n")
    first = proxy.run([tool("pypi-proxy"), "warm", "--server", proxy.url, "-r", str(requirements)])
    assert "warm: 3 projects, 3 files," in first.stdout and "0 failed" in first.stdout, first.stdout
    assert "0 already cached" in first.stdout
    second = proxy.run([tool("pypi-proxy"), "warm", "--server", proxy.url, "-r", str(requirements)])
    assert "warm: 3 projects, 3 files, 0 MB downloaded, 3 already cached, 0 failed" in second.stdout, second.stdout
    print("warm summaries:", first.stdout.strip().splitlines()[-1], "|", second.stdout.strip().splitlines()[-1])

    upstream.stop()
    pip(proxy, tmp_path / "offline")
    assert installed(tmp_path / "offline") == EXPECTED
    failed = proxy.run([tool("pypi-proxy"), "warm", "--server", proxy.url, "no-such-project"], check=False)
    assert failed.returncode == 1 and "1 failed" in failed.stdout
