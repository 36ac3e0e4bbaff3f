"""The supervisor's structured events, in the very lines proxy.log writes, without structlog.

structlog imports asyncio, and asyncio ssl: about 12 MiB resident, a tenth of the memory issue 16
allows the whole service (supervisor and workers), spent in a process that writes a handful of
events in its life. Everything else logs through structlog (proxy.log); the lines written here
are the same as its: JSON objects ``{**values, "event", "level", "logger", "timestamp"}`` off a
terminal, and the console renderer's columns on one (tests/test_eventlog.py compares them).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_ENCODER = json.JSONEncoder(default=repr)  # proxy.log's encoder: repr for what JSON cannot hold
_QUOTED = frozenset(" \t=\r\n\"'")  # strings the console renderer shows with repr


def timestamp(now: float) -> str:
    """``now`` (Unix time) as structlog's ``TimeStamper(fmt="iso", utc=True)`` writes it:
    ISO 8601 in UTC with microseconds and a ``Z``."""
    seconds, micro = divmod(round(now * 1_000_000), 1_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{micro:06d}Z"


def _console_value(value: Any) -> str:
    if isinstance(value, str) and not set(value) & _QUOTED:
        return value
    return repr(value)


class EventLog:
    """``log.info("event_name", key=value)``, as structlog's bound loggers are called.

    ``level``: the lowest level written (proxy.config's ``logging.level``); ``fmt``: "json",
    "console" or "auto" (JSON unless ``stream`` is a terminal), as in ``configure_logging``.
    """

    def __init__(self, name: str, level: str = "info", fmt: str = "auto", stream: TextIO | None = None,
                 clock: Any = time.time) -> None:
        self.name = name
        self._stream = stream
        self._lowest = LEVELS[level]
        self._json = fmt == "json" or (fmt == "auto" and not (stream or sys.stderr).isatty())
        self._clock = clock

    def debug(self, event: str, **values: Any) -> None:
        self._write("debug", event, values)

    def info(self, event: str, **values: Any) -> None:
        self._write("info", event, values)

    def warning(self, event: str, **values: Any) -> None:
        self._write("warning", event, values)

    def error(self, event: str, **values: Any) -> None:
        self._write("error", event, values)

    def render(self, level: str, event: str, values: dict[str, Any]) -> str:
        """The line (without its newline) for one event."""
        stamp = timestamp(self._clock())
        if self._json:
            return _ENCODER.encode({**values, "event": event, "level": level, "logger": self.name, "timestamp": stamp})
        pairs = " ".join(f"{key}={_console_value(values[key])}" for key in sorted(values))
        return f"{stamp} [{level:<9}] {event:<30} [{self.name}]" + (f" {pairs}" if pairs else "")

    def _write(self, level: str, event: str, values: dict[str, Any]) -> None:
        if LEVELS[level] < self._lowest:
            return
        stream = self._stream or sys.stderr  # the current one, as proxy.log's logger does
        stream.write(self.render(level, event, values) + "\n")
        stream.flush()
