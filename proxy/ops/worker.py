"""One server process of several, started by proxy.ops.supervisor (see there)."""

from __future__ import annotations

import json
import os

import structlog

from proxy.config import settings_from_mapping
from proxy.core.errors import ProxyError
from proxy.log import configure_logging
from proxy.ops.eventloop import choose
from proxy.ops.server import run_worker
from proxy.ops.supervisor import READY_FD_ENV, WORKER_ENV, take_settings

log = structlog.get_logger("proxy.ops.worker")


def main() -> None:
    settings = settings_from_mapping(json.loads(take_settings()))
    number = int(os.environ.pop(WORKER_ENV))
    ready_fd = int(os.environ.pop(READY_FD_ENV))
    configure_logging(settings.logging.level, settings.logging.format, worker=number)

    def ready() -> None:
        os.write(ready_fd, b"r")
        os.close(ready_fd)

    try:
        _, run = choose(settings.server.event_loop)
        run(run_worker(settings, ready))
    except ProxyError as exc:  # e.g. CannotListen: one event, and the supervisor reports it
        log.error("worker_failed", error=str(exc))
        raise SystemExit(1) from None


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C before the loop's own handler: the supervisor stops us
        raise SystemExit(130) from None
