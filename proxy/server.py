"""Run the app: logging, the listening socket, systemd readiness, graceful stop on SIGTERM/SIGINT;
with ``workers`` > 1, hand over to proxy.supervisor, which runs that many of these."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from proxy.config import Settings, settings_to_mapping
from proxy.log import configure_logging
from proxy.sdnotify import notify
from proxy.supervisor import SETTINGS_ENV
from proxy.web.app import create_app, runner_options

log = structlog.get_logger(__name__)


def serve(settings: Settings) -> None:
    if settings.server.workers > 1:
        # Become the slim supervisor: same PID (systemd's notify socket keeps trusting it), a
        # fresh interpreter without the application loaded.
        os.environ[SETTINGS_ENV] = json.dumps(settings_to_mapping(settings))
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "proxy.supervisor"])
    configure_logging(settings.logging.level, settings.logging.format)
    asyncio.run(_serve(settings, on_ready=lambda: notify(_status(settings))))


def _status(settings: Settings) -> str:
    return f"READY=1\nSTATUS=serving on {settings.server.host}:{settings.server.port}"


async def _serve(settings: Settings, on_ready: Callable[[], Any], reuse_port: bool = False) -> None:
    host, port = settings.server.host, settings.server.port
    log.info("starting", host=host, port=port, data_dir=str(settings.data_dir))
    runner = web.AppRunner(
        create_app(settings), handle_signals=False, shutdown_timeout=settings.server.shutdown_timeout,
        **runner_options(),
    )
    await runner.setup()
    try:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
        log.info("listening", host=host, port=port, url=f"http://{host}:{port}/pypi/simple/")
        on_ready()
        await stop.wait()
        if not reuse_port:
            notify("STOPPING=1")
        log.info("stopping", grace_s=settings.server.shutdown_timeout)
    finally:
        # Stops listening, lets requests in flight finish within the grace period, then closes
        # the app: downloads still running are cancelled and their temp files removed.
        await runner.cleanup()
        log.info("stopped")


async def run_worker(settings: Settings, on_ready: Callable[[], Any]) -> None:
    """One of several server processes on the same port (SO_REUSEPORT); see proxy.supervisor."""
    await _serve(settings, on_ready, reuse_port=True)
