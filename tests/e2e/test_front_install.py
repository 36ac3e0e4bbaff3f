"""Real twine, pip and uv through a real nginx in front of a real `pypi-proxy serve` in
front-server mode (issue 16), nginx configured with what `pypi-proxy front-config nginx` prints:
the proxy decides, nginx sends the bytes of every complete file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.builders import Dist
from tests.e2e.conftest import PASSWORD, Server, UpstreamThread, installed_version, start_proxy, stop_proxy, tool
from tests.fakeupstream import FakeUpstream, free_port
from tests.frontnginx import Nginx
from tests.tools import require_tool

pytestmark = pytest.mark.e2e

PRIVATE = Dist("internal-tool", "1.2", requires_dist=["demo"])
PUBLIC = [Dist("demo", "1.0", requires_dist=["dep>=2"]), Dist("dep", "2.0")]
EXPECTED = {"internal_tool": "1.2", "demo": "1.0", "dep": "2.0"}
INTERNAL = "/_pypi_proxy_internal/"


@dataclass
class Fronted:
    proxy: Server
    nginx: Nginx

    @property
    def simple(self) -> str:
        return f"{self.nginx.url}/pypi/simple/"

    def files_sent_by_nginx(self) -> set[str]:
        """Files (by name) nginx sent from an internal location, i.e. handed over by the proxy."""
        return {entry.request_uri.rsplit("/", 1)[-1] for entry in self.nginx.logged()
                if entry.uri.startswith(INTERNAL) and entry.status == 200}


@pytest.fixture
def fronted(tmp_path: Path) -> Iterator[Fronted]:
    fake = FakeUpstream()
    for dist in PUBLIC:
        fake.add(dist)
    upstream = UpstreamThread(fake)
    upstream.start()
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    config = home / "config.toml"
    config.write_text(f'[server]\nport = {port}\nfront_server = "nginx"\n[upstream]\nurl = "{fake.url}"\n')
    proxy = start_proxy(home, "--config", str(config), port=port)
    nginx = None
    try:
        common = ["--config", str(config), "--data-dir", str(home / "data")]
        proxy.run([tool("pypi-proxy"), "user", "add", "alice", "--password-stdin", *common], stdin=PASSWORD + "\n")
        nginx_port = free_port()
        site = proxy.run([tool("pypi-proxy"), "front-config", "nginx", *common,
                          "--listen", f"127.0.0.1:{nginx_port}"]).stdout
        nginx = Nginx(tmp_path / "nginx", site=site, port=nginx_port)
        nginx.start_sync()
        yield Fronted(proxy, nginx)
    finally:
        if nginx is not None:
            nginx.stop()
        stop_proxy(proxy.process)
        upstream.stop()
        upstream.close()


def test_twine_pip_and_uv_through_nginx(fronted: Fronted, tmp_path: Path) -> None:
    """A private package (uploaded with twine through nginx) needing a public one: pip installs
    both (public files cold: streamed by the proxy), then uv (all cached: sent by nginx)."""
    wheel, sdist = PRIVATE.write(tmp_path / "dist")
    fronted.proxy.run([tool("twine"), "upload", "--repository-url", f"{fronted.nginx.url}/pypi",
                       "-u", "alice", "-p", PASSWORD, str(wheel), str(sdist)])
    for installer in ("pip", "uv"):
        target = tmp_path / installer
        command = ([tool("python"), "-m", "pip", "install"] if installer == "pip" else [tool("uv"), "pip", "install"])
        fronted.proxy.run([*command, "--target", str(target), "--index-url", fronted.simple, "internal-tool"])
        assert {name: installed_version(target, name) for name in EXPECTED} == EXPECTED
    sent = fronted.files_sent_by_nginx()
    assert PRIVATE.wheel_filename in sent
    assert {dist.wheel_filename for dist in PUBLIC} <= sent, "uv's downloads of cached files came from nginx"


def test_range_and_head_through_nginx_on_a_cached_file(fronted: Fronted, tmp_path: Path) -> None:
    """curl as a client: a byte range and a HEAD of a cached public file, served by nginx."""
    curl = require_tool("curl", "apt-get install curl")
    url = f"{fronted.nginx.url}/pypi/files/demo/{PUBLIC[0].wheel_filename}"
    whole = tmp_path / "whole"
    fronted.proxy.run([curl, "-fsS", "-o", str(whole), url])  # cold: fills the cache
    wheel = whole.read_bytes()
    head = fronted.proxy.run([curl, "-fsS", "-I", url]).stdout
    assert f"Content-Length: {len(wheel)}" in head and "X-Proxy-Cache: hit" in head
    part = tmp_path / "part"
    fronted.proxy.run([curl, "-fsS", "-r", "100-199", "-o", str(part), url])
    assert part.read_bytes() == wheel[100:200]
    assert any(entry.uri.startswith(INTERNAL) and entry.status == 206 for entry in fronted.nginx.logged())
