"""Front-server mode (issue 16): the real app behind a real nginx configured by ``pypi-proxy
front-config nginx``. The proxy decides every file request (names, shadowing, policy, cache fill)
and nginx sends the bytes of complete local files (X-Accel-Redirect); cold files stream through
nginx from the proxy; the internal location is never reachable directly; X-Sendfile for the rest."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from proxy.cli import main
from proxy.config import Settings
from proxy.storage.auth import AuthStore
from proxy.web.front import FrontServer
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, start_client, upload_form
from tests.fakeupstream import FakeUpstream
from tests.frontnginx import Nginx

PRIVATE = Dist("Acme.Widget", "1.0", payload=300_000)
DEMO_WHEEL = "demo-1.0-py3-none-any.whl"
PREFIX = "/_pypi_proxy_internal/"
NGINX_ETAG = re.compile(r'^"[0-9a-f]+-[0-9a-f]+"$')  # nginx's own: "<mtime hex>-<size hex>"


@dataclass
class Front:
    proxy: TestClient  # the proxy itself, as nginx reaches it
    nginx: Nginx
    http: aiohttp.ClientSession  # a client of nginx
    settings: Settings

    async def get(self, path: str, **kwargs: Any) -> tuple[aiohttp.ClientResponse, bytes]:
        async with self.http.get(path, **kwargs) as response:
            return response, await response.read()

    async def upload(self, dist: Dist, kind: str = "wheel") -> None:
        async with self.http.post("/pypi/", data=upload_form(dist, kind), headers=basic("alice", PASSWORD)) as answer:
            assert answer.status == 200, await answer.text()


async def start_front(aiohttp_client: Any, settings: Settings, tmp_path: Path) -> AsyncIterator[Front]:
    proxy = await start_client(aiohttp_client, settings)
    nginx = Nginx(tmp_path / "nginx", settings, proxy.port)
    await nginx.start()
    http = aiohttp.ClientSession(nginx.url, auto_decompress=False)
    try:
        yield Front(proxy, nginx, http, settings)
    finally:
        await http.close()
        nginx.stop()


@pytest.fixture
async def front(aiohttp_client: Any, upstream_settings: Callable[..., Settings], auth: AuthStore,
                tmp_path: Path) -> AsyncIterator[Front]:
    async for started in start_front(aiohttp_client, upstream_settings(server={"front_server": "nginx"}), tmp_path):
        yield started


def served_by_nginx(response: aiohttp.ClientResponse) -> bool:
    """nginx's own ETag: the proxy's are a sha256 (private) or mtime_ns-size, never nginx's."""
    return bool(NGINX_ETAG.match(response.headers.get("ETag", ""))) and "X-Accel-Redirect" not in response.headers


async def test_a_private_file_is_decided_by_the_proxy_and_sent_by_nginx(front: Front) -> None:
    await front.upload(PRIVATE)
    path = f"/pypi/files/acme-widget/{PRIVATE.wheel_filename}"
    direct = await front.proxy.get(path)
    assert direct.status == 200 and await direct.read() == b""
    assert direct.headers["X-Accel-Redirect"] == f"{PREFIX}private/acme-widget/{PRIVATE.wheel_filename}"
    assert direct.headers["ETag"] == f'"{hashlib.sha256(PRIVATE.wheel()).hexdigest()}"'
    response, body = await front.get(path)
    assert response.status == 200 and body == PRIVATE.wheel()
    assert served_by_nginx(response)
    assert response.headers["Content-Type"] == "application/zip"
    assert "immutable" in response.headers["Cache-Control"]
    assert response.headers["X-Proxy-Source"] == "private"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Request-ID"]
    assert "X-Proxy-Cache" not in response.headers  # an empty upstream header is not added


async def test_range_head_and_validators_are_nginx_s(front: Front) -> None:
    await front.upload(PRIVATE)
    wheel = PRIVATE.wheel()
    path = f"/pypi/files/acme-widget/{PRIVATE.wheel_filename}"
    response, body = await front.get(path, headers={"Range": "bytes=-22"})
    assert response.status == 206 and body == wheel[-22:]
    assert response.headers["Content-Range"] == f"bytes {len(wheel) - 22}-{len(wheel) - 1}/{len(wheel)}"
    async with front.http.head(path) as head:
        assert head.status == 200 and int(head.headers["Content-Length"]) == len(wheel)
        assert await head.read() == b""
    etag = response.headers["ETag"]
    response, body = await front.get(path, headers={"If-None-Match": etag})
    assert response.status == 304 and body == b""
    response, body = await front.get(path, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert response.status == 200 and body == wheel
    response, body = await front.get(path, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert response.status == 206 and body == wheel[:10]


async def test_a_cold_file_streams_through_nginx_then_nginx_sends_it(front: Front,
                                                                  fake_upstream: FakeUpstream) -> None:
    wheel = fake_upstream.file(DEMO_WHEEL).content
    path = f"/pypi/files/demo/{DEMO_WHEEL}"
    cold, body = await front.get(path)
    assert cold.status == 200 and body == wheel and cold.headers["X-Proxy-Cache"] == "miss"
    assert not served_by_nginx(cold)
    hit, body = await front.get(path)
    assert hit.status == 200 and body == wheel and hit.headers["X-Proxy-Cache"] == "hit"
    assert served_by_nginx(hit) and hit.headers["X-Proxy-Source"] == "upstream"
    response, body = await front.get(path, headers={"Range": "bytes=10-19"})
    assert response.status == 206 and body == wheel[10:20]
    assert fake_upstream.requests[f"/files/{DEMO_WHEEL}"] == 1


async def test_a_download_in_progress_streams_through_nginx_and_never_ends_cleanly_when_it_fails(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], fake_upstream: FakeUpstream,
        tmp_path: Path) -> None:
    """Upstream sends half of a file and holds: the client already has bytes through nginx (the
    proxy tees them as they come, unbuffered: X-Accel-Buffering: no); then upstream breaks off,
    and the client's response breaks off too (H5), never a complete-looking body."""
    big = fake_upstream.add(Dist("slow", "1.0", payload=400_000), sdist=False)[0]
    fake_upstream.bad.truncate_files = True
    fake_upstream.bad.truncate_hold = asyncio.Event()
    settings = upstream_settings(server={"front_server": "nginx"})
    async for started in start_front(aiohttp_client, settings, tmp_path):
        async with started.http.get(f"/pypi/files/slow/{big.filename}") as response:
            assert response.status == 200 and response.headers["X-Proxy-Cache"] == "miss"
            first = await response.content.readexactly(64 * 1024)  # the download is half done
            fake_upstream.bad.truncate_hold.set()
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        assert first == big.content[:64 * 1024]
        assert not (settings.data_dir / "cache" / "files" / "slow").exists()


async def test_a_stream_asks_nginx_not_to_buffer_it(front: Front, fake_upstream: FakeUpstream) -> None:
    """Streams go to the client as they arrive, not through nginx's temporary files; complete
    files and pages keep nginx's buffering (it frees the proxy at once)."""
    response = await front.proxy.get(f"/pypi/files/demo/{DEMO_WHEEL}")
    assert response.headers["X-Proxy-Cache"] == "miss" and response.headers["X-Accel-Buffering"] == "no"
    assert await response.read() == fake_upstream.file(DEMO_WHEEL).content
    hit = await front.proxy.get(f"/pypi/files/demo/{DEMO_WHEEL}")
    assert "X-Accel-Buffering" not in hit.headers and "X-Accel-Redirect" in hit.headers


@pytest.mark.parametrize("under", ["private/acme-widget/{wheel}", "cache/files/demo/" + DEMO_WHEEL,
                                   "private/../auth.json", "cache/../cache/files/demo/" + DEMO_WHEEL])
async def test_the_internal_locations_are_not_reachable_directly(front: Front, under: str) -> None:
    await front.upload(PRIVATE)
    assert (await front.get(f"/pypi/files/demo/{DEMO_WHEEL}"))[0].status == 200  # cached now
    response, body = await front.get(PREFIX + under.format(wheel=PRIVATE.wheel_filename))
    assert response.status == 404 and PRIVATE.wheel() not in body


async def test_nginx_never_sends_a_file_the_proxy_refuses(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], fake_upstream: FakeUpstream,
        auth: AuthStore, tmp_path: Path) -> None:
    """A cached file the policy now blocks, a cached public file a private project shadows, a
    private file no index lists: all on disk where the internal locations point, none sent."""
    plain = await start_client(aiohttp_client, upstream_settings())
    for filename in (DEMO_WHEEL, "dep-2.0-py3-none-any.whl"):
        project = filename.split("-")[0]
        assert (await plain.get(f"/pypi/files/{project}/{filename}")).status == 200  # cached
    settings = upstream_settings(server={"front_server": "nginx"}, policy={"deny": ["dep<3"]})
    async for started in start_front(aiohttp_client, settings, tmp_path):
        response, body = await started.get("/pypi/files/dep/dep-2.0-py3-none-any.whl")
        assert response.status == 403 and b"deny" in body
        await started.upload(Dist("demo", "5.0"))  # demo is private from now on
        response, _ = await started.get(f"/pypi/files/demo/{DEMO_WHEEL}")
        assert response.status == 404
        orphan = settings.data_dir / "private" / "demo" / "demo-6.0-py3-none-any.whl"
        orphan.write_bytes(b"half an upload")
        response, body = await started.get(f"/pypi/files/demo/{orphan.name}")
        assert response.status == 404 and b"half an upload" not in body
    assert (settings.data_dir / "cache" / "files" / "demo" / DEMO_WHEEL).exists()


async def test_pages_and_uploads_go_through_nginx(front: Front) -> None:
    await front.upload(PRIVATE, "sdist")
    response, body = await front.get("/pypi/simple/acme-widget/", headers={"Accept": "text/html"})
    assert response.status == 200 and PRIVATE.sdist_filename.encode() in body
    response, body = await front.get(f"/pypi/files/acme-widget/{PRIVATE.sdist_filename}")
    assert body == PRIVATE.sdist() and response.headers["Content-Type"] == "application/gzip"


async def test_the_proxy_answers_its_own_etag_with_304(front: Front) -> None:
    await front.upload(PRIVATE)
    path = f"/pypi/files/acme-widget/{PRIVATE.wheel_filename}"
    etag = f'"{hashlib.sha256(PRIVATE.wheel()).hexdigest()}"'
    response = await front.proxy.get(path, headers={"If-None-Match": etag})
    assert response.status == 304 and "X-Accel-Redirect" not in response.headers


async def test_x_sendfile_names_the_absolute_path(aiohttp_client: Any, make_settings: Callable[..., Settings],
                                                  auth: AuthStore) -> None:
    settings = make_settings(server={"front_server": "sendfile"})
    client = await start_client(aiohttp_client, settings)
    response = await client.post("/pypi/", data=upload_form(PRIVATE), headers=basic("alice", PASSWORD))
    assert response.status == 200
    for method in ("GET", "HEAD"):
        response = await client.request(method, f"/pypi/files/acme-widget/{PRIVATE.wheel_filename}")
        expected = settings.data_dir.absolute() / "private" / "acme-widget" / PRIVATE.wheel_filename
        assert response.status == 200 and await response.read() == b""
        assert response.headers["X-Sendfile"] == str(expected)
        assert response.headers["Content-Type"] == "application/zip" and response.headers["ETag"]


@pytest.mark.parametrize(("kind", "relative", "expected"), [
    ("nginx", "private/acme/acme-1.0+local-py3-none-any.whl",
     ("X-Accel-Redirect", "/_pypi_proxy_internal/private/acme/acme-1.0+local-py3-none-any.whl")),
    ("nginx", "cache/files/x/x-1!2.0.tar.gz", ("X-Accel-Redirect", "/_pypi_proxy_internal/cache/files/x/x-1!2.0.tar.gz")),
    # nginx decodes an X-Accel-Redirect once, then parses it again: "%" and "?" cannot be named
    ("nginx", "cache/files/x/x-1.0%41.tar.gz", None),
    ("nginx", "cache/files/x/x-1.0?.tar.gz", None),
    ("nginx", "cache/files/x/x 1.0.tar.gz", None),
    ("nginx", "cache/files/x/ünï-1.0.tar.gz", None),
    ("sendfile", "private/acme/acme-1.0.tar.gz", ("X-Sendfile", "/srv/data/private/acme/acme-1.0.tar.gz")),
])
def test_handover_names_only_plain_paths(kind: str, relative: str, expected: tuple[str, str] | None) -> None:
    front = FrontServer(kind, "/_pypi_proxy_internal/", Path("/srv/data"), Path("/srv/data"))
    assert front.handover(Path("/srv/data") / relative) == expected


def test_a_path_outside_the_data_directory_is_never_handed_over() -> None:
    front = FrontServer("nginx", "/_pypi_proxy_internal/", Path("/srv/data"), Path("/srv/data"))
    assert front.handover(Path("/srv/other/private/x.whl")) is None


def test_front_config_prints_the_settings_nginx_needs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`pypi-proxy front-config nginx`: the proxy's address, the data directory's two served
    directories as internal locations under the prefix, the upload limit, the listen address."""
    config = tmp_path / "config.toml"
    config.write_text('[server]\nport = 9123\nhost = "0.0.0.0"\nfront_server = "nginx"\n'
                      'front_internal_prefix = "/files-inside/"\n[upload]\nmax_file_size = "1 MiB"\n')
    code = main(["front-config", "nginx", "--config", str(config), "--data-dir", str(tmp_path / "data"),
                 "--listen", "127.0.0.1:8000", "--server-name", "pypi.example"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "server 127.0.0.1:9123;" in out and "listen 127.0.0.1:8000;" in out and "server_name pypi.example;" in out
    data = tmp_path.absolute() / "data"
    assert f'location /files-inside/private/ {{\n        internal;\n        alias "{data}/private/";' in out
    assert f'location /files-inside/cache/files/ {{\n        internal;\n        alias "{data}/cache/files/";' in out
    assert f"client_max_body_size {1024**2 + 12 * 1024**2};" in out  # the file and 12 MiB of form


def test_front_config_says_what_it_cannot_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["front-config", "nginx", "--data-dir", str(tmp_path / "da$ta")])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert "nginx configuration cannot hold" in err and "da$ta" in err
    code = main(["front-config", "nginx", "--data-dir", str(tmp_path / "data")])
    assert code == 0 and 'front_server = "nginx"' in capsys.readouterr().err  # not set yet: said so


def test_the_readme_shows_what_front_config_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    shown = re.search(r"<!-- test: front-config -->\n```nginx\n(.*?)```", readme, re.S)
    assert shown, "README.md has no front-config snippet"
    config = tmp_path / "config.toml"
    config.write_text('[server]\nfront_server = "nginx"\n')
    assert main(["front-config", "nginx", "--config", str(config), "--data-dir", "/var/lib/pypi-proxy",
                 "--server-name", "pypi.example.com"]) == 0
    assert capsys.readouterr().out == shown.group(1)
