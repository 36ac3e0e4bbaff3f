"""proxy.ops.fastloop: uvloop's loop with a kernel sendfile and a fine clock. What the transport already holds
goes first, the file's bytes follow exactly (offset, count, file position after), a socket
that fills up is waited on, a peer that leaves is a ConnectionError without a descriptor left
open, and aiohttp's FileResponse (Range included) sends through it. Its clock is the monotonic
one at full resolution (uvloop's own counts whole milliseconds)."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from blockbuster import BlockBuster

from tests.test_eventloop import require_uvloop

BIG = 8 * 1024 * 1024
# Written to the transport just before sendfile: more than the small socket buffers below take,
# so the transport still holds some of it when sendfile starts.
HEAD = b"HEADERS-FIRST\r\n" + os.urandom(1024 * 1024)
SOCKET_BUFFER = 32 * 1024  # both ends: the sender fills it many times and waits for room each time


def small_buffers(writer: asyncio.StreamWriter) -> None:
    sock = writer.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)


@pytest.fixture(autouse=True)
def sendfile_is_the_point(blockbuster: BlockBuster) -> None:
    """os.sendfile on a non-blocking socket, as asyncio's own loop.sendfile does (which
    blockbuster allows there)."""
    blockbuster.functions["os.sendfile"].can_block_in("proxy/ops/fastloop.py", "sendfile")


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    require_uvloop()
    from proxy.ops.fastloop import FastLoop

    loop = FastLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


@pytest.fixture
def content(tmp_path: Path) -> Path:
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(BIG))
    return path


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def send_over_a_connection(path: Path, offset: int, count: int | None, read_slowly: bool = False
                                 ) -> tuple[bytes, int, int]:
    """A server writes HEAD then sends the file with loop.sendfile; (what the client got, what
    sendfile returned, the file's position after)."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[tuple[int, int]] = loop.create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        small_buffers(writer)
        with path.open("rb") as file:  # noqa: ASYNC230 - a test's own file
            writer.write(HEAD)
            assert writer.transport.get_write_buffer_size() > 0, "the transport holds some of it still"
            sent = await loop.sendfile(writer.transport, file, offset, count)
            outcome.set_result((sent, file.tell()))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    small_buffers(writer)
    received = bytearray()
    while chunk := await reader.read(65536):
        received += chunk
        if read_slowly:
            await asyncio.sleep(0)  # let the sender fill the socket and wait
    writer.close()
    server.close()
    await server.wait_closed()
    sent, position = await outcome
    return bytes(received), sent, position


def test_the_transports_bytes_go_first_then_the_whole_file(content: Path) -> None:
    received, sent, position = run(lambda: send_over_a_connection(content, 0, None, read_slowly=True))
    assert received == HEAD + content.read_bytes()
    assert sent == BIG and position == BIG


@pytest.mark.parametrize(("offset", "count"), [(0, 1), (1000, 5000), (BIG - 10, 10), (BIG - 10, None), (BIG, None)])
def test_a_part_of_the_file_and_the_position_after(content: Path, offset: int, count: int | None) -> None:
    received, sent, position = run(lambda: send_over_a_connection(content, offset, count))
    expected = content.read_bytes()[offset:offset + count if count is not None else None]
    assert received == HEAD + expected
    assert sent == len(expected)
    # As asyncio's: the position moves past what was sent (and stays where it was when nothing was).
    assert position == (offset + sent if sent else 0)


def test_a_peer_that_leaves_is_a_connection_error_and_no_descriptor_stays_open(content: Path) -> None:
    async def main() -> BaseException | None:
        loop = asyncio.get_running_loop()
        failed: asyncio.Future[BaseException | None] = loop.create_future()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            small_buffers(writer)
            with content.open("rb") as file:  # noqa: ASYNC230
                try:
                    await loop.sendfile(writer.transport, file)
                    failed.set_result(None)
                except ConnectionError as exc:
                    failed.set_result(exc)
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        before = open_fds()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        await reader.readexactly(65536)  # the transfer is under way, the socket full behind it
        writer.transport.abort()  # reset: the sender's next write fails
        error = await asyncio.wait_for(failed, 10)
        server.close()
        await server.wait_closed()
        assert open_fds() <= before, "the duplicate descriptor is closed"
        return error

    assert isinstance(run(main), ConnectionError)


def test_what_it_cannot_send_is_left_to_the_callers_fallback() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        with pytest.raises(NotImplementedError):
            await loop.sendfile(writer.transport, io.BytesIO(b"no descriptor"))
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(main)


def test_aiohttp_sends_files_and_ranges_through_it(content: Path) -> None:
    async def main() -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.FileResponse(content)

        app = web.Application()
        app.router.add_get("/blob", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        data = content.read_bytes()
        try:
            async with ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/blob") as whole:
                    assert whole.status == 200 and await whole.read() == data
                async with session.get(f"http://127.0.0.1:{port}/blob", headers={"Range": "bytes=100-199"}) as part:
                    assert part.status == 206 and await part.read() == data[100:200]
        finally:
            await runner.cleanup()

    run(main)


def test_the_clock_is_the_monotonic_one_at_full_resolution() -> None:
    """aiohttp times each request with loop.time() (the access log's ms, the latency histogram):
    uvloop's own reads whole milliseconds, so it would fall before a reading taken just before."""
    async def main() -> list[bool]:
        loop = asyncio.get_running_loop()
        readings = []
        for _ in range(20):
            before = time.monotonic()
            now = loop.time()
            readings.append(before <= now <= time.monotonic())
        return readings

    assert all(run(main))


def test_timers_run_in_order_on_that_clock() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        fired: list[str] = []
        done = loop.create_future()
        start = loop.time()
        loop.call_at(start + 0.03, lambda: (fired.append("later"), done.set_result(None)))
        loop.call_at(start + 0.01, fired.append, "sooner")
        loop.call_later(0.02, fired.append, "between")
        await asyncio.wait_for(done, 5)
        return fired

    assert run(main) == ["sooner", "between", "later"]
