"""Run the app: logging, the listening socket, systemd readiness, graceful stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiohttp import web

from proxy.config import Settings
from proxy.log import configure_logging
from proxy.sdnotify import notify
from proxy.web.app import create_app, runner_options

log = structlog.get_logger(__name__)


def serve(settings: Settings) -> None:
    configure_logging(settings.logging.level, settings.logging.format)
    asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> None:
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
        await web.TCPSite(runner, host, port).start()
        log.info("listening", host=host, port=port, url=f"http://{host}:{port}/pypi/simple/")
        notify(f"READY=1\nSTATUS=serving on {host}:{port}")
        await stop.wait()
        notify("STOPPING=1")
        log.info("stopping", grace_s=settings.server.shutdown_timeout)
    finally:
        # Stops listening, lets requests in flight finish within the grace period, then closes
        # the app: downloads still running are cancelled and their temp files removed.
        await runner.cleanup()
        log.info("stopped")
