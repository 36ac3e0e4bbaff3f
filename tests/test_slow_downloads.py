"""(f) of the slow-client family (issue 12, M3): a response the client reads slowly is sent to
the end while it progresses, and dropped once the client takes nothing of it; at the cap such a
client makes room. Through sendfile (a private file) and while streaming a cold upstream file."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from proxy.config import Settings
from proxy.storage.auth import AuthStore
from proxy.web.deadlines import send_progress
from tests.conftest import PASSWORD, basic, upload_form
from tests.fakeupstream import FakeUpstream
from tests.slowclients import (
    BIG,
    QUICK,
    SLACK,
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    Running,
    get_health,
    limits,
    linux_tcp_info,
    poll,
    read_slowly,
    request_with_small_window,
    serving,
    tcp_state,
)


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
