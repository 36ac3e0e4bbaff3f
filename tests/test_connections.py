"""Slow and idle clients cannot hold the server (issue 12, M3; /work/shared/repro/m3_slowloris.sh
scaled down): the real app behind the runner `serve` uses, driven by raw sockets on loopback.

The family: a client that (a) connects and sends nothing, (b) sends a request head a byte at a
time, (c) sends a head then a body too slowly, (d) keeps an idle keep-alive connection, (e) opens
more connections than the cap; (f), responses read slowly, is in test_slow_downloads.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import structlog

from proxy.config import Settings
from proxy.storage.auth import AuthStore
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, snapshot, upload_form
from tests.slowclients import (
    QUICK,
    SLACK,
    UPLOAD_HEAD,
    closed_while,
    drip,
    encoded,
    get_health,
    limits,
    poll,
    read_response,
    serving,
    until_closed,
)

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
