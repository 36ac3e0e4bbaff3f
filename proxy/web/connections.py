"""Slow and idle clients cannot hold the server (issue 12, M3): a cap on open connections at
which the longest-idle connection, or one whose client holds its request up, makes room; each
connection's own deadlines (request head, body pace, response stalls) are its handler's,
``proxy.web.deadlines``.

aiohttp builds its RequestHandler in ``Server.__call__``, so adding these takes a handler
subclass, a server that makes it, and a runner that makes that server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from proxy.config import ServerSettings
from proxy.log import REPEAT_INTERVAL_S, RateLimit
from proxy.web.deadlines import GuardedRequestHandler

log = structlog.get_logger(__name__)
RESCAN_S = 0.1  # after finding no stalled connection, refuse without looking again for this long


class GuardedServer(Server):
    """aiohttp's low-level Server, making GuardedRequestHandlers and capping open connections.

    ``max_connections``: None for no cap. At the cap a new connection closes the one that has
    waited longest for a request (an idle keep-alive or a head still arriving), else one whose
    client holds its request up (``stalled``); when every connection is making progress the new
    one is closed at once, before it is read:
    answering 503 would mean reading its request first (else the close resets the connection
    and the answer is lost), spending on it the descriptor and time the cap is there to save.
    Clients retry a refused connection (pip five times, uv three).
    """

    def __init__(self, handler: Any, *, limits: ServerSettings, max_connections: int | None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("loop", asyncio.get_running_loop())
        super().__init__(handler, **kwargs)
        self.limits = limits
        self.max_connections = max_connections
        self.open: set[GuardedRequestHandler] = set()
        # Connections waiting for a request, longest-waiting first (a dict keeps insertion order).
        self.idle: dict[GuardedRequestHandler, None] = {}
        self._handler_loop: asyncio.AbstractEventLoop = kwargs["loop"]
        self._handler_options = {k: v for k, v in kwargs.items()
                                 if k not in ("loop", "request_factory", "handler_cancellation")}
        self._notices = RateLimit(REPEAT_INTERVAL_S)
        self._rescan_at = 0.0

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._handler_loop, **self._handler_options)

    def admit(self, handler: GuardedRequestHandler) -> bool:
        """Count a new connection in, making room at the cap; False: refuse it."""
        cap = self.max_connections
        if cap is not None and len(self.open) >= cap:
            victim = self._victim()
            if victim is None:
                self.notice("connection_refused", "max_connections", open=len(self.open))
                return False
            victim.hang_up("evicted_at_max_connections")
        self.open.add(handler)
        self.waiting(handler)
        return True

    def _victim(self) -> GuardedRequestHandler | None:
        for handler in self.idle:
            if handler.waiting_for_request:
                return handler
        now = self._handler_loop.time()
        if now < self._rescan_at:  # a flood of connections must not cost a scan each
            return None
        for handler in self.open:
            if handler.stalled(now):
                return handler
        self._rescan_at = now + RESCAN_S
        return None

    def waiting(self, handler: GuardedRequestHandler) -> None:
        """``handler`` begins to wait for a request: it goes last in the eviction order."""
        self.idle.pop(handler, None)
        self.idle[handler] = None

    def forget(self, handler: GuardedRequestHandler) -> None:
        self.open.discard(handler)
        self.idle.pop(handler, None)

    def notice(self, event: str, reason: str, **values: Any) -> None:
        """A warning per reason at most every REPEAT_INTERVAL_S, with the count it stands for."""
        suppressed = self._notices.allow(reason)
        if suppressed is not None:
            log.warning(event, reason=reason, suppressed=suppressed, **values)


class GuardedAppRunner(web.AppRunner):
    """An AppRunner whose server is a GuardedServer, with ``keepalive_timeout`` from the settings."""

    def __init__(self, app: web.Application, *, limits: ServerSettings, max_connections: int | None,
                 **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=limits.keepalive_timeout, **kwargs)
        self._limits = limits
        self._max_connections = max_connections

    async def _make_server(self) -> Server:
        plain = await super()._make_server()  # starts the application; its handler and factory
        return GuardedServer(plain.request_handler, request_factory=plain.request_factory,
                             handler_cancellation=plain.handler_cancellation,
                             limits=self._limits, max_connections=self._max_connections,
                             **{k: v for k, v in self._kwargs.items() if k != "handler_cancellation"})
