"""Structured logs: one access event per request with its request id; JSON lines off a terminal."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import re
import socket
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from proxy.log import RepeatFilter, bind_request_id, configure_logging
from proxy.storage.auth import AuthStore
from proxy.web.simple import SLICE
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, start_client, upload_form
from tests.fakeupstream import FakeFile, FakeUpstream


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_access_event_carries_request_id(client: TestClient) -> None:
    with structlog.testing.capture_logs() as events:
        response = await client.get("/pypi/simple/", headers={"X-Request-ID": "abc-123"})
        await response.read()
        # The access line is written after the body is sent; the next request on this
        # keep-alive connection is handled only after it.
        await (await client.get("/pypi/simple/", headers={"X-Request-ID": "next"})).read()
    assert response.headers["X-Request-ID"] == "abc-123"
    [access] = [e for e in events if e["event"] == "request" and e["request_id"] == "abc-123"]
    assert access["request_id"] == "abc-123"
    assert access["method"] == "GET" and access["path"] == "/pypi/simple/" and access["status"] == 200
    assert access["bytes"] > 0 and access["ms"] >= 0


async def test_unsafe_request_id_is_replaced(client: TestClient) -> None:
    response = await client.get("/pypi/simple/", headers={"X-Request-ID": "bad id with spaces"})
    assert response.headers["X-Request-ID"] != "bad id with spaces"
    assert len(response.headers["X-Request-ID"]) == 16


def test_json_lines(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    structlog.get_logger("proxy.test").info("upload_stored", project="p", size=3)
    logging.getLogger("aiohttp.server").warning("from the stdlib")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["event"] == "upload_stored" and lines[0]["project"] == "p" and lines[0]["level"] == "info"
    assert lines[1]["event"] == "from the stdlib" and lines[1]["logger"] == "aiohttp.server"


def test_timestamps_are_utc_iso_to_the_microsecond(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    before = datetime.now(timezone.utc).replace(microsecond=0)
    for _ in range(3):
        structlog.get_logger("proxy.test").info("tick")
    logging.getLogger("aiohttp.server").warning("from the stdlib")
    after = datetime.now(timezone.utc)
    stamps = [json.loads(line)["timestamp"] for line in capsys.readouterr().err.splitlines()]
    assert len(stamps) == 4
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
        assert before <= datetime.fromisoformat(stamp.replace("Z", "+00:00")) <= after
    assert stamps == sorted(stamps)


def test_a_bound_request_id_is_on_its_own_tasks_lines_only(
        restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Each request runs in a task of its own (aiohttp): the id it binds is on its lines, and on
    no other request's or the server's."""
    configure_logging("info", "json")
    log = structlog.get_logger("proxy.test")

    async def request(request_id: str) -> None:
        bind_request_id(request_id)
        await asyncio.sleep(0)  # the other request runs meanwhile
        log.info("inside")
        log.info("named", request_id="explicit")

    async def main() -> None:
        await asyncio.gather(request("a"), request("b"))
        log.info("outside")

    asyncio.run(main())
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert sorted((line["event"], line.get("request_id")) for line in lines) == [
        ("inside", "a"), ("inside", "b"), ("named", "explicit"), ("named", "explicit"), ("outside", None)]


async def test_access_event_carries_cache_outcome_and_real_file_bytes(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], fake_upstream: FakeUpstream) -> None:
    """Issue 4: one access line per request with status, bytes, duration and cache outcome;
    the bytes of a sendfile'd cached file are its size, not just its headers."""
    client = await start_client(aiohttp_client, upstream_settings())
    wheel = "demo-1.0-py3-none-any.whl"
    size = len(fake_upstream.file(wheel).content)
    with structlog.testing.capture_logs() as events:
        for request_id in ("page-1", "page-2", "file-1", "file-2", "after"):
            path = "/pypi/simple/demo/" if request_id.startswith("page") else f"/pypi/files/demo/{wheel}"
            await (await client.get(path, headers={"X-Request-ID": request_id})).read()
    access = {e["request_id"]: e for e in events if e["event"] == "request"}
    assert (access["page-1"]["cache"], access["page-2"]["cache"]) == ("miss", "hit")
    assert (access["file-1"]["cache"], access["file-2"]["cache"]) == ("miss", "hit")
    assert access["file-1"]["bytes"] == access["file-2"]["bytes"] == size
    assert access["file-2"]["source"] == "upstream"


def _many_files(upstream: FakeUpstream, project: str, count: int) -> None:
    """A project whose page is far above the size sent in one piece (sliced writes), also gzip-coded:
    random file contents, so random hashes, which compress like real ones."""
    for number in range(count):
        upstream.add_file(project, FakeFile(f"{project}-{number}.0.tar.gz", os.urandom(8)))


def _break(what: str, upstream: FakeUpstream, settings: Settings) -> None:
    if what == "upstream-down":  # nothing cached: a domain error mapped to 502
        upstream.bad.page_status = 503
    elif what == "corrupt-index":  # unreadable storage: an unexpected error, aiohttp's own 500
        (settings.data_dir / "private" / "mine" / "project.json").write_text("{not json")


JSON_PAGE = {"Accept": "application/vnd.pypi.simple.v1+json"}
# (method, path, extra headers, expected status, what to break first): every way a response leaves.
RESPONSES = [
    pytest.param("GET", "/pypi/simple/", {}, 200, "", id="small-page"),
    pytest.param("GET", "/pypi/simple/big/", {**JSON_PAGE, "Accept-Encoding": "identity"}, 200, "",
                 id="large-sliced-page"),
    pytest.param("GET", "/pypi/simple/big/", {**JSON_PAGE, "Accept-Encoding": "gzip"}, 200, "",
                 id="large-sliced-gzip-page"),
    pytest.param("GET", "/pypi/simple/demo/", {"If-None-Match": "*"}, 304, "", id="not-modified"),
    pytest.param("HEAD", "/pypi/simple/demo/", {}, 200, "", id="head-page"),
    pytest.param("GET", "/pypi/files/demo/demo-1.0-py3-none-any.whl", {}, 200, "", id="followed-download"),
    pytest.param("GET", "/pypi/files/mine/mine-1.0-py3-none-any.whl", {}, 200, "", id="sendfile"),
    pytest.param("HEAD", "/pypi/files/mine/mine-1.0-py3-none-any.whl", {}, 200, "", id="head-file"),
    pytest.param("GET", "/pypi/files/mine/mine-1.0-py3-none-any.whl", {"Range": "bytes=0-3"}, 206, "",
                 id="range"),
    pytest.param("GET", "/pypi/simple/no-such-project/", {}, 404, "", id="domain-error-404"),
    pytest.param("GET", "/pypi/simple/demo/", {"Accept": "application/json"}, 406, "", id="domain-error-406"),
    pytest.param("POST", "/pypi/", {}, 401, "", id="domain-error-401"),
    pytest.param("GET", "/pypi/simple/demo/", {}, 502, "upstream-down", id="domain-error-502"),
    pytest.param("GET", "/pypi/simple/mine/", {}, 500, "corrupt-index", id="unexpected-error-500"),
    pytest.param("GET", "/nothing/here", {}, 404, "", id="unmatched-route"),
    pytest.param("DELETE", "/pypi/simple/", {}, 405, "", id="method-not-allowed"),
    pytest.param("GET", "/pypi/simple/Demo", {}, 301, "", id="redirect"),
    pytest.param("GET", "/pypi/demo/1.0/", {}, 302, "", id="release-redirect"),
    pytest.param("GET", "/-/projects/mine/", {}, 200, "", id="ui-page"),
    pytest.param("GET", "/-/health", {}, 200, "", id="health"),
]


@pytest.mark.parametrize(("method", "path", "headers", "status", "broken"), RESPONSES)
async def test_every_response_carries_the_request_id(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], fake_upstream: FakeUpstream,
        auth: AuthStore, method: str, path: str, headers: dict[str, str], status: int, broken: str) -> None:
    """D: X-Request-ID is set as headers go out (on_response_prepare), so responses a handler sends
    itself (files, sliced pages) and aiohttp's own (404, 405, 500) have it too; the client's id is
    kept and is the one in the access line."""
    _many_files(fake_upstream, "big", 2000)
    settings = upstream_settings()
    client = await start_client(aiohttp_client, settings)
    mine = Dist("mine", "1.0")
    assert (await client.post("/pypi/", data=upload_form(mine), headers=basic("alice", PASSWORD))).status == 200
    _break(broken, fake_upstream, settings)
    with structlog.testing.capture_logs() as events:
        response = await client.request(method, path, headers={**headers, "X-Request-ID": "req-42"},
                                        allow_redirects=False, auto_decompress=False)
        body = await response.read()
        await (await client.get("/-/health", headers={"X-Request-ID": "after"})).read()
    assert response.status == status
    assert response.headers["X-Request-ID"] == "req-42"
    if path == "/pypi/simple/big/":
        assert len(body) > SLICE, "the page, as sent, goes in slices"
    [access] = [e for e in events if e["event"] == "request" and e["request_id"] == "req-42"]
    assert access["status"] == status


async def test_a_generated_request_id_is_the_logged_one(client: TestClient) -> None:
    with structlog.testing.capture_logs() as events:
        response = await client.get("/nothing/here")
        await response.read()
        await (await client.get("/-/health")).read()
    generated = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{16}", generated)
    assert [e["path"] for e in events if e["event"] == "request" and e["request_id"] == generated] == ["/nothing/here"]


def test_accept_failures_at_the_open_file_limit_make_one_line(
        restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12 M3: asyncio reports every accept that fails with EMFILE through its exception
    handler, with a traceback (hundreds a second at the limit): one line gets through per
    interval. Other library warnings still get theirs."""
    configure_logging("info", "json")
    loop = asyncio.new_event_loop()
    try:
        with socket.socket() as listening:
            for _ in range(1000):
                try:
                    raise OSError(errno.EMFILE, "Too many open files")
                except OSError as exc:  # as asyncio's accept loop hands it over, traceback and all
                    loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                                 "exception": exc, "socket": listening})
        logging.getLogger("aiohttp.server").error("Error handling request from %s", "127.0.0.1")
    finally:
        loop.close()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"].partition("\n")[0] for line in lines] == [
        "socket.accept() out of system resource", "Error handling request from 127.0.0.1"]
    assert "Too many open files" in lines[0]["exception"]


def test_repeat_filter_lets_one_through_per_interval_with_the_count() -> None:
    now = [0.0]
    repeats = RepeatFilter(interval=10.0, clock=lambda: now[0])

    def record(message: str, level: int = logging.ERROR, name: str = "asyncio") -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, message, None, None)

    accept = "socket.accept() out of system resource\nsocket: <socket fd=6>"
    assert repeats.filter(first := record(accept))
    assert not hasattr(first, "suppressed")
    assert [repeats.filter(record(accept)) for _ in range(500)] == [False] * 500
    assert repeats.filter(record("Task exception was never retrieved"))  # another message: its own budget
    assert repeats.filter(record(accept, name="other"))  # another logger: its own budget
    assert repeats.filter(record(accept, level=logging.INFO))  # below warning: never held back
    now[0] = 9.9
    assert not repeats.filter(record(accept))
    now[0] = 10.0
    assert repeats.filter(later := record(accept))
    assert later.suppressed == 501  # type: ignore[attr-defined]


def test_the_suppressed_count_is_in_the_line(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    record = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "socket.accept() failed", None, None)
    record.suppressed = 42
    logging.getLogger("asyncio").handle(record)
    [line] = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert line["suppressed"] == 42 and line["event"] == "socket.accept() failed"
