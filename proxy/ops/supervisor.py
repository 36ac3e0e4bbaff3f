"""With ``workers`` > 1: a small process that starts the server processes, reports readiness to
systemd once all listen, restarts one that dies and stops them all on SIGTERM/SIGINT.

``serve`` execs into this module (same PID, so systemd keeps trusting its notifications), handing
it the settings through a descriptor; it imports none of the server, so it costs a fresh
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
from prometheus_client.multiprocess import mark_process_dead

from proxy.config import Settings, settings_from_mapping
from proxy.log import configure_logging
from proxy.ops.sdnotify import notify
from proxy.storage.runfiles import clear_metrics

SETTINGS_FD_ENV = "PYPI_PROXY_SETTINGS_FD"  # a descriptor to read the settings from, once
WORKER_ENV = "PYPI_PROXY_WORKER"  # this worker's number
READY_FD_ENV = "PYPI_PROXY_READY_FD"  # a pipe a worker writes one byte to once it listens
# prometheus_client's switch to multiprocess mode, read when the worker imports it: one directory
# for all workers, so that any of them can sum everyone's counters (proxy.web.metrics).
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
READY_TIMEOUT_S = 120.0
RESTART_PAUSE_S = 1.0

log = structlog.get_logger("proxy.ops.supervisor")  # not __main__ when run with -m


def settings_handoff(document: str) -> int:
    """A descriptor of an anonymous in-memory file holding ``document`` (the settings as JSON,
    config.settings_to_mapping), for the next program to read with ``take_settings``.

    Not the environment nor the command line: /proc/<pid>/environ and cmdline show those for the
    process's whole life, and children inherit the environment (issue 12, L7: the upstream
    password). Non-inheritable, like every descriptor Python opens: pass it on with pass_fds or
    os.set_inheritable.
    """
    fd = os.memfd_create("pypi-proxy-settings")
    data = document.encode()
    while data:
        data = data[os.write(fd, data):]
    return fd


def take_settings() -> str:
    """The settings document handed over with ``settings_handoff``: read from the descriptor the
    environment names, which is then closed and the variable removed."""
    fd = int(os.environ.pop(SETTINGS_FD_ENV))
    try:
        data = b""
        while chunk := os.pread(fd, 65536, len(data)):  # pread: the offset is shared with the writer's copy
            data += chunk
        return data.decode()
    finally:
        os.close(fd)


def main() -> None:
    document = take_settings()
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
    metrics_dir = clear_metrics(settings.data_dir)  # counters of an earlier run of the service
    ready_read, ready_write = os.pipe()
    worker_env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}  # only we notify
    worker_env[METRICS_DIR_ENV] = str(metrics_dir)

    def start(number: int) -> subprocess.Popen[bytes]:
        handoff = settings_handoff(document)  # one per worker: each reads and closes its own
        env = {**worker_env, SETTINGS_FD_ENV: str(handoff), WORKER_ENV: str(number),
               READY_FD_ENV: str(ready_write)}
        try:
            return subprocess.Popen([sys.executable, "-m", "proxy.ops.worker"], env=env,
                                    pass_fds=(ready_write, handoff))
        finally:
            os.close(handoff)

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
                    # Its counters stay (totals never go down); its live gauges go.
                    mark_process_dead(process.pid, str(metrics_dir))  # type: ignore[no-untyped-call]
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
