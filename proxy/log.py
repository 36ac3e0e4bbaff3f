"""Structured logging: structlog for everything, JSON lines off a terminal, a request id per request."""

from __future__ import annotations

import json
import logging
import sys

import structlog


_ENCODER = json.JSONEncoder(default=repr)  # one encoder: json.dumps with options builds one per call


def _to_json(event: object, **_: object) -> str:
    return _ENCODER.encode(event)


class _StderrLogger:
    """structlog's final logger: one line per event on the current ``sys.stderr``."""

    def __init__(self, name: str = "", *args: object) -> None:
        self.name = name  # for add_logger_name

    def msg(self, message: str) -> None:
        sys.stderr.write(message + "\n")

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def configure_logging(level: str = "info", fmt: str = "auto", worker: int | None = None) -> None:
    """Route structlog and stdlib loggers (aiohttp's included) through one formatter.

    ``worker``: this server process's number, added to every event when there are several.
    """
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())

    def add_worker(logger: object, name: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
        event.setdefault("worker", worker)
        return event

    shared: list[structlog.types.Processor] = [
        *([add_worker] if worker is not None else []),
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
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
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
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
