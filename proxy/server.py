"""Run the app: logging, listening socket, graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import structlog
from aiohttp import web

from proxy.config import Settings
from proxy.log import configure_logging
from proxy.web.app import create_app, runner_options

log = structlog.get_logger(__name__)


def serve(settings: Settings) -> None:
    configure_logging(settings.logging.level, settings.logging.format)
    host, port = settings.server.host, settings.server.port
    log.info("starting", host=host, port=port, data_dir=str(settings.data_dir))
    web.run_app(
        create_app(settings),
        host=host,
        port=port,
        print=lambda text: log.info("listening", host=host, port=port, url=f"http://{host}:{port}/pypi/simple/"),
        shutdown_timeout=30.0,
        **runner_options(),
    )
