"""The supervisor's event lines (proxy.ops.eventlog) are the lines structlog writes through
proxy.log for the same event, in both formats; only the moment differs."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import structlog

from proxy.log import configure_logging
from proxy.ops.eventlog import EventLog, timestamp

VALUES: list[dict[str, Any]] = [
    {},
    {"workers": 2},
    {"worker": 1, "exitcode": -9},
    {"path": "/tmp/a b", "quote": "it's", "equals": "a=b", "plain": "abc", "none": None, "ratio": 1.5,
     "items": [1, "x"], "flag": True, "text": "pässwörd"},
]
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def structlog_line(fmt: str, level: str, event: str, values: dict[str, Any],
                   capsys: pytest.CaptureFixture[str]) -> str:
    configure_logging("debug", fmt)
    getattr(structlog.get_logger("proxy.ops.supervisor"), level)(event, **values)
    [line] = capsys.readouterr().err.splitlines()
    return line


@pytest.mark.parametrize("values", VALUES)
@pytest.mark.parametrize("level", ["info", "warning", "error"])
def test_json_lines_are_structlogs(restore_logging: None, capsys: pytest.CaptureFixture[str],
                                   level: str, values: dict[str, Any]) -> None:
    theirs = structlog_line("json", level, "worker_died", values, capsys)
    ours = EventLog("proxy.ops.supervisor", "debug", "json").render(level, "worker_died", values)
    mine, expected = json.loads(ours), json.loads(theirs)
    assert STAMP.fullmatch(mine.pop("timestamp")) and STAMP.fullmatch(expected.pop("timestamp"))
    assert list(mine.items()) == list(expected.items())  # the same keys, in the same order


@pytest.mark.parametrize("values", VALUES)
def test_console_lines_are_structlogs(restore_logging: None, capsys: pytest.CaptureFixture[str],
                                      values: dict[str, Any]) -> None:
    theirs = structlog_line("console", "info", "workers_starting", values, capsys)
    ours = EventLog("proxy.ops.supervisor", "debug", "console").render("info", "workers_starting", values)
    assert STAMP.sub("T", ours) == STAMP.sub("T", theirs)


def test_events_below_the_level_are_not_written() -> None:
    stream = io.StringIO()
    log = EventLog("proxy.ops.supervisor", "warning", "json", stream=stream)
    log.info("workers_ready", workers=2)
    log.error("worker_died", worker=0, exitcode=1)
    [line] = stream.getvalue().splitlines()
    assert json.loads(line)["event"] == "worker_died"


def test_auto_is_json_off_a_terminal() -> None:
    stream = io.StringIO()
    EventLog("proxy.ops.supervisor", "info", "auto", stream=stream).info("stopped", workers=2)
    assert json.loads(stream.getvalue())["workers"] == 2


@pytest.mark.parametrize("moment", [0.0, 1764672000.5, 1764672000.000001, 1764672000.999999])
def test_the_timestamp_is_iso_utc_with_microseconds(moment: float) -> None:
    expected = datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert timestamp(moment) == expected
