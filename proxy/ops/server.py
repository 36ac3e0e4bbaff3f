"""Run the app: logging, the listening socket, systemd readiness, graceful stop on SIGTERM/SIGINT;
with ``workers`` > 1, hand over to proxy.ops.supervisor, which runs that many of these."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from proxy.config import Settings, settings_to_mapping
from proxy.core.errors import CannotListen
from proxy.log import configure_logging
from proxy.ops.eventloop import choose
from proxy.ops.memory import freeze_startup_objects, tune_allocator
from proxy.ops.sdnotify import notify
from proxy.ops.supervisor import SETTINGS_FD_ENV, settings_handoff
from proxy.storage.backends import shared_mode
from proxy.storage.datadir import check_data_dir
from proxy.web.app import create_app, runner_options
from proxy.web.connections import GuardedAppRunner
from proxy.web.ops import loop_name
from proxy.web.openfiles import MAX_FILES

log = structlog.get_logger(__name__)
# Descriptors kept for what is not a client connection (upstream connections: aiohttp's pool of
# 100; files being written; the caches' databases; logs), and per client connection (its socket
# and the file it may be sending).
FDS_RESERVED = 128
FDS_PER_CONNECTION = 2


def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT. Raises DataDirUnusable or CannotListen, before anything starts,
    when the data directory or the address cannot be used; with ``[storage] database`` set,
    SchemaMismatch or DatabaseUnavailable when its schema is not this version's or it cannot be
    reached (a replica never serves from a schema it does not know); ConfigError for one of
    ``database`` and ``objects`` without the other."""
    _, run = choose(settings.server.event_loop)  # ConfigError now, when uvloop is asked for and absent
    check_data_dir(settings.data_dir, create=True, write=True)
    if shared_mode(settings.storage):  # ConfigError for half of it
        # Imported only then: the embedded default never loads SQLAlchemy and Alembic.
        from proxy.ops.database import check_configured_schema

        check_configured_schema(settings.storage)
    probe_listen(settings.server.host, settings.server.port)
    if settings.server.workers > 1:
        # Become the slim supervisor: same PID (systemd's notify socket keeps trusting it), a
        # fresh interpreter without the application loaded. The settings (secrets included) go
        # through a descriptor, never the environment (issue 12, L7).
        handoff = settings_handoff(json.dumps(settings_to_mapping(settings)))
        os.set_inheritable(handoff, True)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-m", "proxy.ops.supervisor"],
                  {**os.environ, SETTINGS_FD_ENV: str(handoff)})
    configure_logging(settings.logging.level, settings.logging.format)
    tune_allocator()  # before any thread starts
    run(_serve(settings, on_ready=lambda: notify(_status(settings))))


def _status(settings: Settings) -> str:
    return f"READY=1\nSTATUS=serving on {settings.server.host}:{settings.server.port}"


async def _serve(settings: Settings, on_ready: Callable[[], Any], reuse_port: bool = False) -> None:
    host, port = settings.server.host, settings.server.port
    log.info("starting", host=host, port=port, data_dir=str(settings.data_dir))
    runner = make_runner(settings, connection_cap(settings.server.max_connections))
    await runner.setup()
    freeze_startup_objects()
    try:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
        except OSError as exc:  # taken since probe_listen, or a worker's own start
            raise listen_error(host, port, exc) from None
        log.info("listening", host=host, port=port, url=f"http://{host}:{port}/pypi/simple/",
                 event_loop=loop_name(loop))
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


def make_runner(settings: Settings, max_connections: int | None) -> web.AppRunner:
    """The app's runner, with the per-connection limits of ``settings.server`` (proxy.web.connections)."""
    return GuardedAppRunner(
        create_app(settings), limits=settings.server, max_connections=max_connections,
        handle_signals=False, shutdown_timeout=settings.server.shutdown_timeout, **runner_options(),
    )


def connection_cap(wanted: int) -> int | None:
    """The cap on open connections: ``wanted`` (None when 0, no cap), lowered to what the
    open-file limit leaves room for, after raising the soft limit toward the hard one (as Go's
    runtime does; systemd's LimitNOFILE sets both). At the limit, accepts fail with EMFILE and so
    does opening any file: better to turn connections away than fail requests in progress."""
    if not wanted:
        return None
    needed = FDS_RESERVED + MAX_FILES + FDS_PER_CONNECTION * wanted  # and the open-file cache's
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (OSError, ValueError):  # e.g. systemd's SystemCallFilter=~@resources
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    fits = max(1, (soft - FDS_RESERVED) // FDS_PER_CONNECTION)
    log.warning("max_connections_lowered", wanted=wanted, max_connections=fits, open_file_limit=soft,
                hint="raise the open-file limit: LimitNOFILE= in the systemd unit, or ulimit -n")
    return fits


def probe_listen(host: str, port: int) -> None:
    """Bind (without listening) every address the server will listen on, as asyncio's
    create_server resolves them, then let go: CannotListen now rather than after start-up."""
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise CannotListen(host, port, "the host name does not resolve", _HOST_HINT) from None
    for family, kind, proto, _, address in dict.fromkeys(addresses):
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio does
            try:
                sock.bind(address)
            except OSError as exc:
                raise listen_error(host, port, exc) from None


_HOST_HINT = "set --host (or [server] host) to an address of this machine, such as 127.0.0.1 or 0.0.0.0"
_PORT_HINT = "choose another port with --port (or [server] port)"


def listen_error(host: str, port: int, exc: OSError) -> CannotListen:
    """The bind error ``exc`` as a CannotListen that says what to change."""
    if isinstance(exc, socket.gaierror):
        return CannotListen(host, port, "the host name does not resolve", _HOST_HINT)
    if exc.errno == errno.EADDRINUSE:
        return CannotListen(host, port, "the address is already in use",
                            f"stop the program listening there, or {_PORT_HINT}")
    if exc.errno == errno.EACCES and 0 < port < 1024:
        return CannotListen(host, port, "permission denied: ports below 1024 need privileges",
                            "choose a port from 1024 up with --port (or [server] port), or give the service "
                            "CAP_NET_BIND_SERVICE")
    if exc.errno == errno.EADDRNOTAVAIL:
        return CannotListen(host, port, "the address is not one of this machine's", _HOST_HINT)
    return CannotListen(host, port, (exc.strerror or str(exc)).lower(), "check --host and --port")


async def run_worker(settings: Settings, on_ready: Callable[[], Any]) -> None:
    """One of several server processes on the same port (SO_REUSEPORT); see proxy.ops.supervisor."""
    await _serve(settings, on_ready, reuse_port=True)
