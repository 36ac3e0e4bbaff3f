"""Structured logs: one access event per request with its request id; JSON lines off a terminal."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from proxy.log import configure_logging
from tests.conftest import start_client
from tests.fakeupstream import FakeUpstream


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
