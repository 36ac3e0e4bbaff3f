"""With ``workers`` > 1: a small process that starts the server processes, reports readiness to
systemd once all listen, restarts one that dies and stops them all on SIGTERM/SIGINT.

``serve`` execs into this module (same PID, so systemd keeps trusting its notifications), handing
it the settings through a descriptor. It imports none of the server, nor asyncio, structlog,
prometheus_client or proxy.config: a fresh interpreter and the few stdlib modules below, about
12 MiB resident instead of 30 (issue 16: the whole tree under 120 MiB). Caches on disk and
single-flight downloads are shared through the file system (diskcache, flock on the part file),
so any worker may answer any request.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from proxy.ops.eventlog import EventLog
from proxy.ops.sdnotify import notify
from proxy.storage.runfiles import clear_metrics

SETTINGS_FD_ENV = "PYPI_PROXY_SETTINGS_FD"  # a descriptor to read the settings from, once
WORKER_ENV = "PYPI_PROXY_WORKER"  # this worker's number
READY_FD_ENV = "PYPI_PROXY_READY_FD"  # a pipe a worker writes one byte to once it listens
# The process a restarted worker replaces: it marks that one's live gauges dead (prometheus_client's
# mark_process_dead), so that the supervisor need not import prometheus_client to do it.
REPLACES_ENV = "PYPI_PROXY_REPLACES"
# prometheus_client's switch to multiprocess mode, read when the worker imports it: one directory
# for all workers, so that any of them can sum everyone's counters (proxy.web.metrics).
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
READY_TIMEOUT_S = 120.0
RESTART_PAUSE_S = 1.0

LOGGER = "proxy.ops.supervisor"  # not __main__ when run with -m


class Supervision(NamedTuple):
    """What the supervisor reads of the settings: a view of the document ``serve`` validated
    (proxy.config.settings_to_mapping), taken without importing proxy.config and what it
    imports (yarl, packaging, the policy's modules)."""

    workers: int
    host: str
    port: int
    shutdown_timeout: float
    data_dir: Path
    log_level: str
    log_format: str

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Supervision:
        server, logging = document["server"], document["logging"]
        return cls(int(server["workers"]), str(server["host"]), int(server["port"]),
                   float(server["shutdown_timeout"]), Path(document["storage"]["data_dir"]),
                   str(logging["level"]), str(logging["format"]))


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
    raise SystemExit(supervise(Supervision.from_document(json.loads(document)), document))


def supervise(settings: Supervision, document: str) -> int:
    log = EventLog(LOGGER, settings.log_level, settings.log_format)
    count = settings.workers
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

    def start(number: int, replaces: int | None = None) -> subprocess.Popen[bytes]:
        handoff = settings_handoff(document)  # one per worker: each reads and closes its own
        env = {**worker_env, SETTINGS_FD_ENV: str(handoff), WORKER_ENV: str(number),
               READY_FD_ENV: str(ready_write)}
        if replaces is not None:
            env[REPLACES_ENV] = str(replaces)
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
            notify(f"READY=1\nSTATUS=serving on {settings.host}:{settings.port} with {count} workers")
            log.info("workers_ready", workers=count)
        while not stopping:
            time.sleep(0.2)
            for number, process in list(workers.items()):
                if process.poll() is not None and not stopping:
                    log.error("worker_died", worker=number, exitcode=process.returncode)
                    time.sleep(RESTART_PAUSE_S)
                    workers[number] = start(number, replaces=process.pid)
    finally:
        notify("STOPPING=1")
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # each worker stops gracefully
        deadline = time.monotonic() + settings.shutdown_timeout + 10
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
