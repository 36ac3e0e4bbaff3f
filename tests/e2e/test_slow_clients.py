"""/work/shared/repro/m3_slowloris.sh, scaled down (issue 12, M3): `pypi-proxy serve` under a low
open-file limit, held by many slow connections, keeps answering /-/health, closes the slow
connections within its deadlines, and writes a bounded number of log lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from proxy.log import REPEAT_INTERVAL_S
from tests.e2e.conftest import clean_env, free_port, tool, wait_until_serving
from tests.test_eventloop import require_uvloop

pytestmark = pytest.mark.e2e
DEADLINES = {"header_timeout": 2, "body_idle_timeout": 2, "keepalive_timeout": 2}
SLACK = 5.0
REPRO_HEAD = (b"POST /pypi/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
              b"Content-Length: 100000000\r\n\r\n--x\r\n")


@contextlib.contextmanager
def serve_with_open_files(home: Path, open_files: int, server: dict[str, int]) -> Iterator[tuple[int, Path]]:
    """`pypi-proxy serve` started as the repro starts it, under `ulimit -n open_files`; yields its
    port and its log file."""
    port = free_port()
    config = home / "config.toml"
    config.write_text("[server]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in server.items()))
    command = shlex.join([tool("pypi-proxy"), "serve", "--no-upstream", "--port", str(port),
                          "--data-dir", str(home / "data"), "--config", str(config)])
    log = home / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(["bash", "-c", f"ulimit -n {open_files} && exec {command}"],
                                   env=clean_env(home), stdout=out, stderr=out)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/-/health", process)
        yield port, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=40)  # requests in flight get shutdown_timeout (30 s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def slow_client(port: int, first: bytes, pace: float, sent: asyncio.Event | None = None) -> float:
    """Connects, sends ``first``, then a byte every ``pace`` seconds; seconds until the server
    closed the connection. ``sent`` is set once ``first`` is on its way (or the connection refused)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionError:  # refused at the cap before the handshake was seen through
        if sent is not None:
            sent.set()
        return loop.time() - start

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(first)
            await writer.drain()
            if sent is not None:
                sent.set()
            while True:
                await asyncio.sleep(pace)
                writer.write(b"a")
                await writer.drain()

    sending = asyncio.create_task(trickle())
    try:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
    finally:
        sending.cancel()
        writer.close()
    return loop.time() - start


async def health_answers(port: int) -> int:
    """Polls /-/health as a client with retries would, until it answers 200; the attempts made."""
    attempts = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            attempts += 1
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with session.get(f"http://127.0.0.1:{port}/-/health") as response:
                    if response.status == 200:
                        return attempts
            await asyncio.sleep(0.1)


def log_lines(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


SLOW = {
    "connect-and-send-nothing": (b"", 3600.0, "header_timeout"),
    "headers-a-byte-every-second": (b"GET /-/health HTTP/1.1\r\n", 1.0, "header_timeout"),
    "repro-body-a-byte-every-second": (REPRO_HEAD, 1.0, "body_idle_timeout"),
}


@pytest.mark.parametrize("first, pace, deadline", SLOW.values(), ids=SLOW.keys())
async def test_slow_clients_at_a_low_open_file_limit_do_not_hold_the_server(
        tmp_path: Path, first: bytes, pace: float, deadline: str) -> None:
    """150 slow connections against `ulimit -n 256`: the cap fits the limit (64), /-/health
    answers, every slow connection is closed by its deadline (or refused at once), no accept
    fails, and the log stays a handful of lines (the repro wrote 440 MB in 95 s)."""
    with serve_with_open_files(tmp_path, 256, DEADLINES) as (port, log):
        clients = [asyncio.create_task(slow_client(port, first, pace)) for _ in range(150)]
        attempts = await asyncio.wait_for(health_answers(port), 60)
        held = await asyncio.wait_for(asyncio.gather(*clients), 2 * DEADLINES[deadline] + SLACK)
        assert max(held) <= 2 * DEADLINES[deadline] + SLACK
        lines = log_lines(log)
    # One access line per request whose head arrived (the body-trickling ones), by design;
    # everything else is a handful of lines however many connections there were.
    access = [line for line in lines if line["event"] == "request"]
    assert len(access) <= len(clients) + attempts + 1  # and wait_until_serving's request
    others = [line["event"] for line in lines if line["event"] != "request"]
    assert not any("out of system resource" in str(event) for event in others)
    lowered = next(line for line in lines if line["event"] == "max_connections_lowered")
    assert (lowered["max_connections"], lowered["open_file_limit"]) == (64, 256)
    assert len(others) <= 12, others


async def test_health_answers_while_slow_uploads_hold_every_connection(tmp_path: Path) -> None:
    """The repro's uploads, trickling a byte a second, fill the cap (64 under `ulimit -n 256`)
    and their body window is 600 s here, so no deadline frees a slot during the test: /-/health
    answers all the same, as at the cap an upload behind body_min_rate makes room."""
    with serve_with_open_files(tmp_path, 256, {"body_idle_timeout": 600}) as (port, _):
        clients = []
        for _ in range(150):  # one at a time, so every admitted one has sent its head: none is idle
            sent = asyncio.Event()
            clients.append(asyncio.create_task(slow_client(port, REPRO_HEAD, 1.0, sent)))
            await asyncio.wait_for(sent.wait(), 10)
        await asyncio.wait_for(health_answers(port), 30)
        assert sum(not client.done() for client in clients) >= 60  # still held
        for client in clients:
            client.cancel()
        await asyncio.gather(*clients, return_exceptions=True)


async def test_accept_failures_at_the_open_file_limit_are_logged_once_per_interval(tmp_path: Path) -> None:
    """With the cap off (max_connections = 0), 60 connections that send nothing exhaust
    `ulimit -n 40`: on asyncio's loop accepts fail, and that is one log line, not one per
    failure; once the header deadline closes the connections, /-/health answers again."""
    loop = asyncio.get_running_loop()
    settings = {**DEADLINES, "max_connections": 0, "event_loop": "asyncio"}
    with serve_with_open_files(tmp_path, 40, settings) as (port, log):
        start = loop.time()
        clients = [asyncio.create_task(slow_client(port, b"", 3600.0)) for _ in range(60)]
        await asyncio.wait_for(asyncio.gather(*clients), 4 * DEADLINES["header_timeout"] + SLACK)
        await asyncio.wait_for(health_answers(port), 30)
        lines = log_lines(log)
        intervals = 1 + int((loop.time() - start) // REPEAT_INTERVAL_S)
    failures = [line for line in lines if "out of system resource" in str(line["event"])]
    assert 1 <= len(failures) <= intervals, "at most one line per interval, however many accepts failed"
    assert "Too many open files" in str(failures[0]["exception"])
    assert len([line for line in lines if line["event"] != "request"]) <= 12


async def test_at_the_open_file_limit_uvloop_closes_the_excess_connections_and_logs_nothing(tmp_path: Path) -> None:
    """The same on uvloop: libuv keeps a descriptor in reserve, and at the limit accepts the
    waiting connections and closes them at once; nothing floods the log, and /-/health answers
    again once the header deadline has closed the connections it holds."""
    require_uvloop()
    settings = {**DEADLINES, "max_connections": 0, "event_loop": "uvloop"}
    with serve_with_open_files(tmp_path, 40, settings) as (port, log):
        clients = [asyncio.create_task(slow_client(port, b"", 3600.0)) for _ in range(60)]
        await asyncio.wait_for(asyncio.gather(*clients), 4 * DEADLINES["header_timeout"] + SLACK)
        await asyncio.wait_for(health_answers(port), 30)
        lines = log_lines(log)
    [listening] = [line for line in lines if line["event"] == "listening"]
    assert listening["event_loop"] == "uvloop"
    assert len([line for line in lines if line["event"] != "request"]) <= 12
