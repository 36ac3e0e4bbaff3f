"""Slow and idle clients cannot hold the server (issue 12, M3; /work/shared/repro/m3_slowloris.sh
scaled down): the real app behind the runner `serve` uses, driven by raw sockets on loopback.

The family: a client that (a) connects and sends nothing, (b) sends a request head a byte at a
time, (c) sends a head then a body too slowly, (d) keeps an idle keep-alive connection, (e) opens
more connections than the cap, (f) reads a response slowly (served while it progresses, closed
once it stalls).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from proxy.auth import AuthStore
from proxy.config import Settings
from proxy.connections import GuardedServer, send_progress
from proxy.server import make_runner
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, snapshot, upload_form
from tests.fakeupstream import FakeUpstream

# Short deadlines keep each test to a few seconds; SLACK absorbs a loaded machine.
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
    """The app on 127.0.0.1, behind proxy.server's runner, with the settings' connection limits."""
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


HEADS = {
    "nothing-sent": b"",
    "head-a-byte-at-a-time": b"GET /-/health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 400 + b"\r\n\r\n",
    "request-line-a-byte-at-a-time": b"GET /-/" + b"h" * 400 + b" HTTP/1.1\r\n\r\n",
}


@pytest.mark.parametrize("head", HEADS.values(), ids=HEADS.keys())
async def test_a_request_head_has_header_timeout_to_arrive(make_settings: Callable[..., Settings], head: bytes) -> None:
    """(a), (b): closed once header_timeout has passed since connecting, however steadily the
    bytes come (a byte every 20 ms here: the whole head would take seconds). Keep-alive, which
    aiohttp alone would apply, is far longer here."""
    async with serving(make_settings(server={**QUICK, "keepalive_timeout": 30})) as running:
        reader, writer = await running.connect()
        sender = asyncio.create_task(drip(writer, head, 0.02) if head else asyncio.sleep(3600))
        elapsed = await closed_while(reader, sender, QUICK["header_timeout"] + SLACK)
        assert elapsed >= QUICK["header_timeout"] * 0.9
        assert running.server.open == set()
        writer.close()


async def test_the_next_head_on_a_kept_alive_connection_has_header_timeout(
        make_settings: Callable[..., Settings]) -> None:
    """(b) after a first request: keep-alive gives the idle wait, not a head that trickles."""
    async with serving(make_settings(server={**QUICK, "keepalive_timeout": 30})) as running:
        reader, writer = await running.connect()
        writer.write(b"GET /-/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        sender = asyncio.create_task(drip(writer, HEADS["head-a-byte-at-a-time"], 0.02))
        elapsed = await closed_while(reader, sender, QUICK["header_timeout"] + SLACK)
        assert elapsed < 30  # keep-alive did not govern it
        writer.close()


async def test_an_idle_kept_alive_connection_lasts_keepalive_timeout(make_settings: Callable[..., Settings]) -> None:
    """(d): idle between requests, a connection gets keepalive_timeout (longer than the head
    deadline, and reusable within it), then is closed."""
    async with serving(make_settings(server=QUICK)) as running:
        reader, writer = await running.connect()
        loop = asyncio.get_running_loop()
        for _ in range(2):  # the second request comes after header_timeout, within keep-alive
            writer.write(b"GET /-/health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(reader))[0] == 200
            answered = loop.time()
            await asyncio.sleep(QUICK["header_timeout"] * 1.5)
        await asyncio.wait_for(until_closed(reader), QUICK["keepalive_timeout"] + SLACK)
        assert loop.time() - answered >= QUICK["keepalive_timeout"] * 0.9
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.partition(b":")[2]) for line in lines if line.lower().startswith(b"content-length:"))
    return int(lines[0].split()[1]), await reader.readexactly(length)


BODIES = {
    "no-body-byte": b"",
    "a-byte-every-100ms": b"--x\r\n" + b"a" * 400,  # 10 B/s, below body_min_rate
}


@pytest.mark.parametrize("authorized", [False, True], ids=["anonymous", "authorized"])
@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
async def test_a_request_body_that_comes_too_slowly_is_cut(
        make_settings: Callable[..., Settings], auth: AuthStore, body: bytes, authorized: bool) -> None:
    """(c), the repro's case: complete headers promising 100 MB, then a body slower than
    body_min_rate over a body_idle_timeout window: closed, and nothing stored or left staged."""
    settings = make_settings(server={**QUICK, "keepalive_timeout": 30})
    async with serving(settings) as running:
        before = snapshot(settings.data_dir)
        reader, writer = await running.connect()
        credentials = basic("alice", PASSWORD)["Authorization"].encode() if authorized else b""
        writer.write(UPLOAD_HEAD + (b"Authorization: " + credentials + b"\r\n" if authorized else b"") + b"\r\n")
        sender = asyncio.create_task(drip(writer, body, 0.1) if body else asyncio.sleep(3600))
        elapsed = await closed_while(reader, sender, 2 * QUICK["body_idle_timeout"] + SLACK)
        assert elapsed >= QUICK["body_idle_timeout"] * 0.9
        await poll(lambda: snapshot(settings.data_dir) == before)
        writer.close()


async def test_a_body_at_a_steady_pace_is_read_to_the_end(
        make_settings: Callable[..., Settings], auth: AuthStore) -> None:
    """(c), the other side: an upload spanning several body_idle_timeout windows at a pace above
    body_min_rate is stored."""
    dist = Dist("steady", "1.0", payload=30_000)
    settings = make_settings(server=QUICK)
    async with serving(settings) as running:
        body, content_type = await encoded(upload_form(dist))
        reader, writer = await running.connect()
        writer.write(f"POST /pypi/ HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {len(body)}\r\n".encode()
                     + b"Authorization: " + basic("alice", PASSWORD)["Authorization"].encode() + b"\r\n\r\n")
        chunk = len(body) // 30 + 1  # 30 chunks 50 ms apart: 1.5 s, three windows, ~20 kB/s
        for start in range(0, len(body), chunk):
            writer.write(body[start:start + chunk])
            await writer.drain()
            await asyncio.sleep(0.05)
        status, text = await read_response(reader)
        assert status == 200, text
        assert (settings.data_dir / "private" / "steady" / dist.wheel_filename).read_bytes() == dist.wheel()
        writer.close()


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


async def test_at_max_connections_the_longest_idle_connection_makes_room(make_settings: Callable[..., Settings]) -> None:
    """(e): at the cap a new connection is served, and the connection that has waited longest for
    a request is closed to make room; the others stay usable."""
    async with serving(make_settings(server=limits(max_connections=3))) as running:
        idle = [await running.connect() for _ in range(3)]
        await poll(lambda: len(running.server.open) == 3
                   and all(handler.waiting_for_request for handler in running.server.open))
        assert await get_health(running) == 200
        await asyncio.wait_for(until_closed(idle[0][0]), SLACK)
        for reader, writer in idle[1:]:
            writer.write(b"GET /-/health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(reader))[0] == 200
        for _, writer in idle:
            writer.close()


async def test_at_max_connections_with_every_request_progressing_new_ones_are_closed_at_once(
        make_settings: Callable[..., Settings], auth: AuthStore) -> None:
    """(e): when every connection has a request making progress (here uploads whose body comes at
    10 B/s, above a body_min_rate of 1), a new connection is closed before anything is read, at
    once rather than at a deadline, and twenty of them make one log line."""
    async with serving(make_settings(server=limits(max_connections=2, body_min_rate=1))) as running:
        busy = [await running.connect() for _ in range(2)]
        senders = [asyncio.create_task(drip(writer, UPLOAD_HEAD + b"\r\n" + b"a" * 1000, 0.001))
                   for _, writer in busy]
        await poll(lambda: len(running.server.open) == 2
                   and not any(handler.waiting_for_request for handler in running.server.open))
        for sender in senders:  # from the body on, 10 bytes a second
            sender.cancel()
        senders = [asyncio.create_task(drip(writer, b"a" * 1000, 0.1)) for _, writer in busy]
        with structlog.testing.capture_logs() as events:
            for _ in range(20):
                reader, writer = await running.connect()
                writer.write(b"GET /-/health HTTP/1.1\r\nHost: x\r\n\r\n")
                assert await asyncio.wait_for(reader.read(), SLACK) == b""  # far before any deadline
                writer.close()
            assert not any(handler.stalled(asyncio.get_running_loop().time()) for handler in running.server.open)
        assert [e for e in events if e["event"] == "connection_refused"] == [
            {"event": "connection_refused", "log_level": "warning", "reason": "max_connections",
             "suppressed": 0, "open": 2}]
        for sender in senders:
            sender.cancel()
        for _, writer in busy:
            writer.close()


async def test_at_max_connections_an_upload_behind_pace_makes_room(
        make_settings: Callable[..., Settings], auth: AuthStore) -> None:
    """(c) + (e), the repro's case: uploads whose body is behind body_min_rate hold every slot
    (their own window is 30 s here); a new connection closes one of them and is served."""
    async with serving(make_settings(server=limits(max_connections=2))) as running:
        uploads = [await running.connect() for _ in range(2)]
        for _, writer in uploads:
            writer.write(UPLOAD_HEAD + b"\r\n--x\r\n")
        await poll(lambda: len(running.server.open) == 2 and all(
            handler.stalled(asyncio.get_running_loop().time()) for handler in running.server.open))
        assert await get_health(running) == 200
        done, _ = await asyncio.wait([asyncio.create_task(until_closed(reader)) for reader, _ in uploads],
                                     timeout=SLACK, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1
        for _, writer in uploads:
            writer.close()


@linux_tcp_info
async def test_at_max_connections_a_download_nobody_reads_makes_room(
        make_settings: Callable[..., Settings], auth: AuthStore) -> None:
    """(f) + (e): a client that took nothing of its download for a send check holds no slot
    another client needs, before its own send_idle_timeout (8 s here)."""
    async with serving(make_settings(server=limits(max_connections=1, send_idle_timeout=8))) as running:
        async with aiohttp.ClientSession() as session, session.post(
                running.url("/pypi/"), data=upload_form(BIG), headers=basic("alice", PASSWORD)) as response:
            assert response.status == 200, await response.text()
        await poll(lambda: not running.server.open)
        sock = await request_with_small_window(running, f"/pypi/files/big/{BIG.wheel_filename}")
        await poll(lambda: len(running.server.open) == 1 and all(
            handler.stalled(asyncio.get_running_loop().time()) for handler in running.server.open))
        assert await get_health(running) == 200
        await poll(lambda: tcp_state(sock) in (TCP_CLOSE, TCP_CLOSE_WAIT), SLACK)
        sock.close()


async def test_many_slow_clients_closed_make_one_log_line(make_settings: Callable[..., Settings]) -> None:
    """M3's log flood, from our side: 30 connections closed for the same reason within the
    interval make one warning (the next one, an interval later, carries the count)."""
    async with serving(make_settings(server=QUICK)) as running:
        with structlog.testing.capture_logs() as events:
            clients = [await running.connect() for _ in range(30)]
            for reader, _ in clients:
                await asyncio.wait_for(until_closed(reader), QUICK["header_timeout"] + SLACK)
        closed = [e for e in events if e["event"] == "connection_closed"]
        assert [(e["reason"], e["suppressed"]) for e in closed] == [("header_timeout", 0)]
        for _, writer in clients:
            writer.close()


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


@pytest.fixture(params=["private", "upstream"])
async def big_file(request: pytest.FixtureRequest, make_settings: Callable[..., Settings],
                   upstream_settings: Callable[..., Settings], fake_upstream: FakeUpstream,
                   auth: AuthStore) -> AsyncIterator[tuple[Running, str]]:
    """The app serving BIG: a private file (sendfile) or a cold upstream one (streamed while it
    downloads), with QUICK limits; yields it and the file's path."""
    path = f"/pypi/files/big/{BIG.wheel_filename}"
    if request.param == "upstream":
        fake_upstream.add(BIG, sdist=False, metadata=False)
        async with serving(upstream_settings(server=QUICK)) as running:
            async with aiohttp.ClientSession() as session, session.get(running.url("/pypi/simple/big/")) as page:
                assert page.status == 200
            yield running, path
        return
    async with serving(make_settings(server=QUICK)) as running:
        async with aiohttp.ClientSession() as session, session.post(
                running.url("/pypi/"), data=upload_form(BIG), headers=basic("alice", PASSWORD)) as response:
            assert response.status == 200, await response.text()
        yield running, path


@linux_tcp_info
async def test_a_slow_download_that_progresses_is_sent_to_the_end(big_file: tuple[Running, str]) -> None:
    """(f): 1 MB read 4 KiB at a time, taking several send_idle_timeouts: never cut."""
    running, path = big_file
    sock = await request_with_small_window(running, path)
    loop = asyncio.get_running_loop()
    start = loop.time()
    body = await read_slowly(sock, 0.01)
    assert loop.time() - start > 2 * QUICK["send_idle_timeout"]
    assert hashlib.sha256(body).digest() == hashlib.sha256(BIG.wheel()).digest()
    sock.close()


@linux_tcp_info
async def test_a_download_the_client_stops_reading_is_closed(big_file: tuple[Running, str]) -> None:
    """(f): a client that reads nothing of the response holds no connection (nor open file)
    beyond send_idle_timeout."""
    running, path = big_file
    sock = await request_with_small_window(running, path)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await poll(lambda: tcp_state(sock) in (TCP_CLOSE, TCP_CLOSE_WAIT), QUICK["send_idle_timeout"] * 1.25 + SLACK)
    assert loop.time() - start >= QUICK["send_idle_timeout"] * 0.9
    await poll(lambda: running.server.open == set())
    sock.close()


@linux_tcp_info
def test_send_progress_counts_acknowledged_bytes() -> None:
    """The kernel's view of a response: bytes the peer acknowledged, and whether any wait."""
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    with server, client, peer:
        assert send_progress(peer) == (0, False)
        peer.sendall(b"x" * 1000)
        assert client.recv(1000, socket.MSG_WAITALL) == b"x" * 1000
        deadline = time.monotonic() + 5
        while send_progress(peer) != (1000, False) and time.monotonic() < deadline:  # the ACK is on its way
            time.sleep(0.01)
        assert send_progress(peer) == (1000, False)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:  # until the client's window and our buffer are full
                peer.send(b"y" * 65536)
        acked, waiting = send_progress(peer) or (0, False)
        assert waiting and acked >= 1000
