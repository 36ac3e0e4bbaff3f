"""Run the app: logging, the listening socket, systemd readiness, graceful stop on SIGTERM/SIGINT,
and with ``workers`` > 1 a supervisor of that many server processes sharing the port."""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

import structlog
from aiohttp import web

from proxy.config import Settings
from proxy.log import configure_logging
from proxy.sdnotify import notify
from proxy.web.app import create_app, runner_options
from proxy.web.workerstats import clear_snapshots

log = structlog.get_logger(__name__)
_READY_TIMEOUT_S = 120.0
_RESTART_PAUSE_S = 1.0


def serve(settings: Settings) -> None:
    configure_logging(settings.logging.level, settings.logging.format)
    if settings.server.workers <= 1:
        asyncio.run(_serve(settings, on_ready=lambda: notify(_status(settings))))
    else:
        _supervise(settings)


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


# Several processes ---------------------------------------------------------------------------------


def _worker(settings: Settings, number: int, ready: Any) -> None:
    """One server process; the kernel spreads connections over them (SO_REUSEPORT)."""
    configure_logging(settings.logging.level, settings.logging.format, worker=number)
    asyncio.run(_serve(settings, on_ready=lambda: ready.put(number), reuse_port=True))


def _supervise(settings: Settings) -> None:
    """Start the workers, report ready once all listen, restart one that dies, stop them all on
    SIGTERM/SIGINT. Caches on disk and single-flight downloads are shared through the file
    system (diskcache, flock on the part file), so any worker may answer any request."""
    context = multiprocessing.get_context("spawn")  # no event loop or socket inherited by fork
    ready = context.SimpleQueue()
    count = settings.server.workers
    stopping = False

    def start(number: int) -> BaseProcess:
        process = context.Process(target=_worker, args=(settings, number, ready), name=f"pypi-proxy-worker-{number}")
        process.start()
        return process

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    clear_snapshots(settings.data_dir)  # counters of an earlier run of the service
    workers = {number: start(number) for number in range(count)}
    log.info("workers_starting", workers=count)
    try:
        started = 0
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while started < count and not stopping:
            if time.monotonic() > deadline or any(not p.is_alive() for p in workers.values()):
                log.error("workers_failed_to_start")
                raise SystemExit(1)
            while not ready.empty():
                ready.get()
                started += 1
            time.sleep(0.05)
        if not stopping:
            notify(_status(settings))
            log.info("workers_ready", workers=count)
        while not stopping:
            time.sleep(0.2)
            for number, process in list(workers.items()):
                if not process.is_alive() and not stopping:
                    log.error("worker_died", worker=number, exitcode=process.exitcode)
                    time.sleep(_RESTART_PAUSE_S)
                    workers[number] = start(number)
    finally:
        notify("STOPPING=1")
        for process in workers.values():
            if process.is_alive():
                process.terminate()  # SIGTERM: each worker stops gracefully
        deadline = time.monotonic() + settings.server.shutdown_timeout + 10
        for process in workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        log.info("stopped", workers=count)
