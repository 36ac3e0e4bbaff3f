"""proxy.web.filesend on every way the server may run: asyncio's loop (its sendfile), uvloop's
(proxy.ops.fastloop's sendfile) and TLS (no sendfile: reads at explicit offsets through the
executor). The same bytes, ranges, HEAD and 304 each way, one descriptor for many requests."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, TCPConnector, web
from blockbuster import BlockBuster

from proxy.config import Settings
from proxy.web import filesend
from proxy.web.keys import EXECUTOR, OPEN_FILES, SETTINGS
from tests.test_eventloop import require_uvloop
from tests.tools import require_tool

SIZE = 3 * 1024 * 1024 + 17  # several fallback chunks, and not a multiple of one
VERSION = "0123abcd"


@pytest.fixture(autouse=True)
def sendfile_is_the_point(blockbuster: BlockBuster) -> None:
    blockbuster.functions["os.sendfile"].can_block_in("proxy/ops/fastloop.py", "sendfile")


@pytest.fixture
def content(tmp_path: Path) -> Path:
    path = tmp_path / "blob.whl"
    path.write_bytes(os.urandom(SIZE))
    return path


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts for a self-signed certificate made by openssl."""
    openssl = require_tool("openssl", "apt-get install openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


async def exercise(content: Path, make_settings: Callable[..., Settings],
                   tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None) -> None:
    """A minimal app sending ``content`` by send_file; every kind of request, checked."""
    async def handler(request: web.Request) -> web.StreamResponse:
        return await filesend.send_file(request, content, {"Content-Type": "application/zip"}, size=SIZE,
                                        version=VERSION)

    app = web.Application()
    app[SETTINGS] = make_settings()
    executor = ThreadPoolExecutor(2)
    app[EXECUTOR] = executor
    filesend.setup(app, app[SETTINGS])
    app.router.add_get("/blob", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls[0] if tls else None)
    await site.start()
    url = f"{'https' if tls else 'http'}://127.0.0.1:{runner.addresses[0][1]}/blob"
    data = content.read_bytes()
    try:
        async with ClientSession(connector=TCPConnector(ssl=tls[1] if tls else True)) as session:
            for _ in range(3):
                async with session.get(url) as whole:
                    assert whole.status == 200 and await whole.read() == data
                    assert whole.headers["ETag"] == f'"{VERSION}"' and whole.headers["Accept-Ranges"] == "bytes"
            async with session.get(url, headers={"Range": "bytes=1048570-2097160"}) as part:
                assert part.status == 206 and await part.read() == data[1048570:2097161]
            async with session.head(url) as head:
                assert head.status == 200 and int(head.headers["Content-Length"]) == SIZE
            async with session.get(url, headers={"If-None-Match": f'"{VERSION}"'}) as cached:
                assert cached.status == 304 and await cached.read() == b""
            assert len(app[OPEN_FILES]) == 1, "one descriptor for every request"
    finally:
        await runner.cleanup()
        executor.shutdown()


async def test_asyncio_loop(content: Path, make_settings: Callable[..., Settings]) -> None:
    await exercise(content, make_settings)


async def test_tls_reads_at_explicit_offsets(content: Path, make_settings: Callable[..., Settings],
                                             tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    await exercise(content, make_settings, tls)


def run_on_uvloop(main: Callable[[], Awaitable[Any]]) -> Any:
    require_uvloop()
    from proxy.ops.fastloop import FastLoop

    loop = FastLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def test_uvloop(content: Path, make_settings: Callable[..., Settings]) -> None:
    """The server's default loop where uvloop is installed: sendfile is proxy.ops.fastloop's."""
    run_on_uvloop(lambda: exercise(content, make_settings))


def test_concurrent_responses_share_one_descriptor(content: Path, make_settings: Callable[..., Settings]) -> None:
    """Many ranges of one file at once over one shared descriptor: each gets its own bytes (no
    file position is ever relied on)."""
    async def main() -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await filesend.send_file(request, content, {}, size=SIZE, version=VERSION)

        app = web.Application()
        app[SETTINGS] = make_settings()
        executor = ThreadPoolExecutor(2)
        app[EXECUTOR] = executor
        filesend.setup(app, app[SETTINGS])
        app.router.add_get("/blob", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/blob"
        data = content.read_bytes()
        starts = [i * 100_003 for i in range(30)]

        async def one(session: ClientSession, start: int) -> bool:
            async with session.get(url, headers={"Range": f"bytes={start}-{start + 200_000}"}) as part:
                return await part.read() == data[start:start + 200_001]

        try:
            async with ClientSession() as session:
                assert all(await asyncio.gather(*(one(session, start) for start in starts)))
            assert len(app[OPEN_FILES]) == 1
        finally:
            await runner.cleanup()
            executor.shutdown()

    run_on_uvloop(main)
