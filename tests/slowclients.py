"""Raw loopback clients for the tests of slow and idle clients (issue 12, M3): the app behind the
runner `serve` uses, short deadlines, and clients that send or read as slowly as they are told."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from proxy.config import Settings
from proxy.ops.server import make_runner
from proxy.web.connections import GuardedServer
from tests.builders import Dist

QUICK = {"header_timeout": 0.5, "body_idle_timeout": 0.5, "body_min_rate": 200,
         "send_idle_timeout": 1.0, "keepalive_timeout": 1.5}
SLACK = 3.0
BIG = Dist("big", "1.0", payload=1_000_000)  # about 1 MB of incompressible wheel
UPLOAD_HEAD = (b"POST /pypi/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
               b"Content-Length: 100000000\r\n")
TCP_CLOSE, TCP_CLOSE_WAIT = 7, 8  # linux/tcp_states.h
linux_tcp_info = pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="needs Linux's TCP_INFO")


@dataclass
class Running:
    port: int
    server: GuardedServer

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Running]:
    """The app on 127.0.0.1, behind proxy.ops.server's runner, with the settings' connection limits."""
    runner = make_runner(settings, settings.server.max_connections or None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        assert isinstance(runner.server, GuardedServer)
        yield Running(site.port, runner.server)
    finally:
        await runner.cleanup()


async def until_closed(reader: asyncio.StreamReader) -> None:
    """Reads (and drops) whatever comes until the server closes or resets the connection (a
    write the client makes meanwhile may see it first, as a broken pipe)."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass


async def drip(writer: asyncio.StreamWriter, data: bytes, interval: float) -> None:
    """Sends ``data`` one byte per ``interval`` seconds, until done or the server hangs up."""
    with contextlib.suppress(ConnectionError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(interval)


async def closed_while(reader: asyncio.StreamReader, sender: asyncio.Task[None], within: float) -> float:
    """Seconds until the server closed the connection, while ``sender`` still had bytes to send."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.wait_for(until_closed(reader), within)
    elapsed = loop.time() - start
    assert not sender.done() or sender.exception() is None
    sender.cancel()
    return elapsed


async def poll(condition: Callable[[], bool], within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def get_health(running: Running) -> int:
    async with aiohttp.ClientSession() as session, session.get(running.url("/-/health")) as response:
        await response.read()
        return response.status


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.partition(b":")[2]) for line in lines if line.lower().startswith(b"content-length:"))
    return int(lines[0].split()[1]), await reader.readexactly(length)


async def encoded(form: aiohttp.FormData) -> tuple[bytes, str]:
    """The multipart body aiohttp's client would send for ``form``, and its Content-Type."""
    payload = form()
    chunks: list[bytes] = []

    class Sink:
        async def write(self, data: bytes) -> None:
            chunks.append(bytes(data))

    await payload.write(Sink())  # type: ignore[arg-type]
    return b"".join(chunks), payload.content_type


def limits(**values: float) -> dict[str, float]:
    return {**QUICK, "header_timeout": 30, "keepalive_timeout": 30, "body_idle_timeout": 30, **values}


def tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


async def request_with_small_window(running: Running, path: str) -> socket.socket:
    """A GET from a client whose receive buffer is tiny, so what it does not read stays on the
    server's side."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", running.port))
    await loop.sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


async def read_slowly(sock: socket.socket, pause: float) -> bytes:
    """The body of the response, read 4 KiB at a time with a pause after each read."""
    loop = asyncio.get_running_loop()
    data = b""
    while b"\r\n\r\n" not in data:
        data += await loop.sock_recv(sock, 4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.partition(b":")[2]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = await loop.sock_recv(sock, 4096)
        assert chunk, f"cut after {len(body)} of {length} bytes"
        body += chunk
        await asyncio.sleep(pause)
    return body
