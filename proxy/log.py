"""Structured logging: structlog for everything, JSON lines off a terminal, a request id per request."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Hashable
from contextvars import ContextVar

import structlog

_ENCODER = json.JSONEncoder(default=repr)  # one encoder: json.dumps with options builds one per call


def _to_json(event: object, **_: object) -> str:
    return _ENCODER.encode(event)


# The id of the request being handled (proxy.web.middlewares): each request runs in a task of its
# own, which holds a copy of the context, so the id never outlives its request.
_REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


def bind_request_id(request_id: str) -> None:
    """Put ``request_id`` on every event logged from here on in this task (and tasks it starts)."""
    _REQUEST_ID.set(request_id)


def _add_request_id(logger: object, name: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
    """Processor: the bound request id (``bind_request_id``), unless the event names one. One
    variable read: structlog's merge_contextvars walks every variable of the context."""
    request_id = _REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


class _UtcStamper:
    """Processor: "timestamp", ISO 8601 in UTC to the microsecond ("2026-12-02T10:37:30.945073Z",
    as structlog's TimeStamper(fmt="iso", utc=True) writes it), the date and time of day
    formatted once a second rather than per event. Safe across threads: one tuple, swapped whole."""

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")

    def __call__(self, logger: object, name: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
        second, nanos = divmod(time.time_ns(), 1_000_000_000)
        cached, prefix = self._second
        if second != cached:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, prefix)
        event["timestamp"] = f"{prefix}.{nanos // 1000:06d}Z"
        return event


class _StderrLogger:
    """structlog's final logger: one line per event on the current ``sys.stderr``."""

    def __init__(self, name: str = "", *args: object) -> None:
        self.name = name  # for add_logger_name

    def msg(self, message: str) -> None:
        sys.stderr.write(message + "\n")

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


REPEAT_INTERVAL_S = 10.0  # a repeated library warning is written at most once per this many seconds


class RateLimit:
    """At most one event per key every ``interval`` seconds; the others are counted.

    Bounds what clients can make the server write: an event each of thousands of connections
    triggers (an accept failing at the open-file limit, a slow client closed) costs one line per
    interval, and that line says how many it stands for.
    """

    MAX_KEYS = 1024

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[Hashable, tuple[float, int]] = {}  # key: (time let through, suppressed since)

    def allow(self, key: Hashable) -> int | None:
        """None: drop this one. Else let it through: the number dropped since the last one."""
        now = self._clock()
        last, suppressed = self._last.get(key, (float("-inf"), 0))
        if now - last < self.interval:
            self._last[key] = (last, suppressed + 1)
            return None
        if len(self._last) >= self.MAX_KEYS:  # keys are message templates: few, but never unbounded
            self._last = {k: v for k, v in self._last.items() if now - v[0] < self.interval}
        self._last[key] = (now, 0)
        return suppressed


class RepeatFilter(logging.Filter):
    """Lets one stdlib warning or error per logger and message through every ``interval`` seconds;
    the one let through carries ``suppressed``, how many were dropped before it.

    asyncio logs "socket.accept() out of system resource" (with a traceback) for every failed
    accept at the open-file limit, up to its backlog (100) per wake-up, and aiohttp logs
    "Error handling request" per connection: under a flood of connections that was hundreds of
    MB of log a minute (issue 12, M3). Our own events do not pass here (see configure_logging).
    """

    def __init__(self, interval: float = REPEAT_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._limit = RateLimit(interval, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        # asyncio's exception handler logs a ready-made text: its first line is the message.
        suppressed = self._limit.allow((record.name, str(record.msg).partition("\n")[0]))
        if suppressed is None:
            return False
        if suppressed:
            record.suppressed = suppressed
        return True


def configure_logging(level: str = "info", fmt: str = "auto", worker: int | None = None) -> None:
    """Route structlog and stdlib loggers (aiohttp's included) through one formatter.

    ``worker``: this server process's number, added to every event when there are several.
    Repeated warnings of libraries are rate-limited (RepeatFilter).
    """
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())

    def add_worker(logger: object, name: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
        event.setdefault("worker", worker)
        return event

    shared: list[structlog.types.Processor] = [
        *([add_worker] if worker is not None else []),
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _UtcStamper(),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(serializer=_to_json) if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    # Our own events skip the stdlib logging machinery (a third of a small request's cost when it
    # carried the access line); aiohttp's and other libraries' records still go through it below.
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        logger_factory=_StderrLogger,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatFilter())
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(allow=("suppressed",))],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Our middleware writes one access line per request; aiohttp's own would duplicate it.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
