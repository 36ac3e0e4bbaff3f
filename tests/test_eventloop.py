"""proxy.ops.eventloop: ``[server] event_loop`` picks uvloop or asyncio's loop, falls back when
uvloop does not import, and a server started with each value answers, says which loop it runs,
and still closes a slow client's connection (its reset goes through a socket object of its own)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.core.errors import ConfigError
from proxy.ops.eventloop import choose
from tests.tools import CI_ENV
from tests.waiting import until_sync


def require_uvloop() -> None:
    """uvloop comes with the proxy on CPython for Linux and macOS: skip elsewhere, fail in CI."""
    if importlib.util.find_spec("uvloop") is None:
        message = "uvloop is not installed (pip install uvloop; installed with the proxy on Linux and macOS)"
        if os.environ.get(CI_ENV):
            pytest.fail(f"{message}; {CI_ENV} is set, so this test fails rather than skips", pytrace=False)
        pytest.skip(message)


async def _running_loop() -> str:
    loop = asyncio.get_running_loop()
    return f"{type(loop).__module__}.{type(loop).__qualname__}"


def test_asyncio_runs_on_the_standard_loop() -> None:
    name, run = choose("asyncio")
    assert name == "asyncio"
    assert run(_running_loop()).startswith("asyncio.")


@pytest.mark.parametrize("choice", ["auto", "uvloop"])
def test_auto_and_uvloop_run_on_uvloop_with_its_sendfile(choice: str) -> None:
    require_uvloop()
    name, run = choose(choice)
    assert name == "uvloop"
    assert run(_running_loop()) == "proxy.ops.fastloop.FastLoop"


def test_auto_falls_back_to_asyncio_when_uvloop_does_not_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    name, run = choose("auto")
    assert name == "asyncio"
    assert run(_running_loop()).startswith("asyncio.")


def test_uvloop_asked_for_and_missing_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(ConfigError) as raised:
        choose("uvloop")
    assert raised.value.key == "server.event_loop"
    assert "uvloop is not installed" in str(raised.value) and "asyncio" in str(raised.value)


def test_an_unknown_loop_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="expected one of auto, uvloop, asyncio, got 'trio'"):
        choose("trio")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, port: int, log: Path, loop: str) -> None:
        self.port = port
        self.log = log
        self.loop = loop  # the loop it should run: "asyncio" or "uvloop"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def get(self, path: str) -> tuple[int, bytes]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body


@pytest.fixture(params=["asyncio", "uvloop", "auto"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """``pypi-proxy serve`` in a subprocess with ``event_loop`` set, private packages only, a
    one-second header_timeout."""
    if request.param != "asyncio":
        require_uvloop()
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nevent_loop = "{request.param}"\nheader_timeout = 1\n[logging]\nformat = "json"\n')
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", str(config), "--no-upstream",
                                    "--data-dir", str(tmp_path / "data"), "--port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT)
    served = Served(port, log, "asyncio" if request.param == "asyncio" else "uvloop")
    try:
        until_sync(lambda: process.poll() is not None or any(e["event"] == "listening" for e in served.events()),
                   "the server listens", within=60)
        assert process.poll() is None, log.read_text()
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()


def test_a_server_on_each_loop_answers_and_says_which_it_runs(served: Served) -> None:
    [listening] = [e for e in served.events() if e["event"] == "listening"]
    assert listening["event_loop"] == served.loop
    status, body = served.get("/-/health")
    assert status == 200 and json.loads(body)["event_loop"] == served.loop
    status, body = served.get("/pypi/simple/")
    assert status == 200 and b"<html" in body.lower()


def test_a_slow_request_head_is_reset_on_each_loop(served: Served) -> None:
    """hang_up (proxy.web.deadlines) on uvloop too: its transports' socket stand-in has no
    shutdown(); the server resets the connection once header_timeout has passed."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"GET /pypi/simple/ HTTP/1.1\r\n")
        started = time.monotonic()
        try:
            closed = sock.recv(1) == b""
        except ConnectionResetError:
            closed = True
    assert closed and time.monotonic() - started < 9, "closed by the server, not by the client's timeout"
    assert served.get("/-/health")[0] == 200, "the server goes on"
