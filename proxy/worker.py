"""One server process of several, started by proxy.supervisor (see there)."""

from __future__ import annotations

import asyncio
import json
import os

from proxy.config import settings_from_mapping
from proxy.log import configure_logging
from proxy.server import run_worker
from proxy.supervisor import READY_FD_ENV, SETTINGS_ENV, WORKER_ENV


def main() -> None:
    settings = settings_from_mapping(json.loads(os.environ.pop(SETTINGS_ENV)))
    number = int(os.environ.pop(WORKER_ENV))
    ready_fd = int(os.environ.pop(READY_FD_ENV))
    configure_logging(settings.logging.level, settings.logging.format, worker=number)

    def ready() -> None:
        os.write(ready_fd, b"r")
        os.close(ready_fd)

    asyncio.run(run_worker(settings, ready))


if __name__ == "__main__":
    main()
