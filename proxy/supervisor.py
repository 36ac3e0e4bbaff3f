"""With ``workers`` > 1: a small process that starts the server processes, reports readiness to
systemd once all listen, restarts one that dies and stops them all on SIGTERM/SIGINT.

``serve`` execs into this module (same PID, so systemd keeps trusting its notifications) with
the settings in the environment; it imports none of the server, so it costs a fresh
interpreter's memory rather than the whole application's. Caches on disk and single-flight
downloads are shared through the file system (diskcache, flock on the part file), so any
worker may answer any request.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import structlog

from proxy.config import Settings, settings_from_mapping
from proxy.log import configure_logging
from proxy.runfiles import clear_snapshots
from proxy.sdnotify import notify

SETTINGS_ENV = "PYPI_PROXY_SETTINGS"  # the settings as JSON (config.settings_to_mapping)
WORKER_ENV = "PYPI_PROXY_WORKER"  # this worker's number
READY_FD_ENV = "PYPI_PROXY_READY_FD"  # a pipe a worker writes one byte to once it listens
READY_TIMEOUT_S = 120.0
RESTART_PAUSE_S = 1.0

log = structlog.get_logger("proxy.supervisor")  # not __main__ when run with -m


def main() -> None:
    document = os.environ.pop(SETTINGS_ENV)
    settings = settings_from_mapping(json.loads(document))
    configure_logging(settings.logging.level, settings.logging.format)
    raise SystemExit(supervise(settings, document))


def supervise(settings: Settings, document: str) -> int:
    count = settings.server.workers
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    clear_snapshots(settings.data_dir)  # counters of an earlier run of the service
    ready_read, ready_write = os.pipe()
    worker_env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}  # only we notify

    def start(number: int) -> subprocess.Popen[bytes]:
        env = {**worker_env, SETTINGS_ENV: document, WORKER_ENV: str(number), READY_FD_ENV: str(ready_write)}
        return subprocess.Popen([sys.executable, "-m", "proxy.worker"], env=env, pass_fds=(ready_write,))

    workers = {number: start(number) for number in range(count)}
    log.info("workers_starting", workers=count)
    code = 0
    try:
        started = 0
        deadline = time.monotonic() + READY_TIMEOUT_S
        while started < count and not stopping:
            if time.monotonic() > deadline or any(p.poll() is not None for p in workers.values()):
                log.error("workers_failed_to_start")
                return 1
            readable, _, _ = select.select([ready_read], [], [], 0.05)
            if readable:
                started += len(os.read(ready_read, 64))
        if not stopping:
            notify(f"READY=1\nSTATUS=serving on {settings.server.host}:{settings.server.port} "
                   f"with {count} workers")
            log.info("workers_ready", workers=count)
        while not stopping:
            time.sleep(0.2)
            for number, process in list(workers.items()):
                if process.poll() is not None and not stopping:
                    log.error("worker_died", worker=number, exitcode=process.returncode)
                    time.sleep(RESTART_PAUSE_S)
                    workers[number] = start(number)
    finally:
        notify("STOPPING=1")
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # each worker stops gracefully
        deadline = time.monotonic() + settings.server.shutdown_timeout + 10
        for process in workers.values():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                code = 1
        log.info("stopped", workers=count)
    return code


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C before supervise() set its handlers: nothing started yet
        raise SystemExit(130) from None
