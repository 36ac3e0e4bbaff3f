"""Deadlines on what the server waits for from one client (issue 12, M3): its request head, a
minimum pace for its request body, and a stall limit for the response it is sent.

aiohttp 3.14's server has one deadline of its own, ``keepalive_timeout`` (web_protocol.py:
armed at connection start and after each response, acted on only while the handler waits for
the next request). Nothing bounds a request head sent a byte at a time, a body that trickles, or
a response the client stops reading (``drain`` and ``loop.sendfile`` wait for ever): this
RequestHandler subclass adds them, per connection. The cap on connections, and the server and
runner that make these handlers, are in ``proxy.web.connections``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import TYPE_CHECKING, Any

from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

if TYPE_CHECKING:
    from proxy.web.connections import GuardedServer

# A closed connection is reset at once; a handler still running (its sendfile, its reads) sees
# the error first and lets aiohttp close the transport. Closing the descriptor under a running
# sendfile would let the next accepted connection reuse its number: wait this long before doing it.
ABORT_AFTER_S = 5.0
SEND_CHECKS_PER_TIMEOUT = 4
# At the cap, a request the client has held up for this long (a body behind body_min_rate, a
# response it took nothing of) may be closed to make room, before its own deadline.
STALLED_S = 1.0

# Linux's struct tcp_info (linux/tcp.h); fields are only ever appended, so offsets are stable.
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_TCPI_UNACKED, _TCPI_BYTES_ACKED, _TCPI_NOTSENT_BYTES, _TCPI_SIZE = 24, 120, 144, 148


def send_progress(sock: Any) -> tuple[int, bool] | None:
    """(bytes of the response the peer has acknowledged so far, whether bytes are waiting for it)
    of a TCP socket, from Linux's tcp_info (kernel 4.6 or later); None where that is unavailable.
    Counts bytes sent by ``sendfile`` as well as by writes."""
    if _TCP_INFO is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCPI_SIZE)
    except OSError:
        return None
    if len(raw) < _TCPI_SIZE:
        return None
    (unacked,) = struct.unpack_from("=I", raw, _TCPI_UNACKED)
    (acked,) = struct.unpack_from("=Q", raw, _TCPI_BYTES_ACKED)
    (notsent,) = struct.unpack_from("=I", raw, _TCPI_NOTSENT_BYTES)
    return acked, bool(unacked or notsent)


def _reset(fd: int) -> None:
    """Make the connection on socket ``fd`` reset when closed (nothing lingers in the kernel) and
    fail every read and write on it from now on, a sendfile in progress included. Through a socket
    object of our own over the descriptor (let go of, not closed): uvloop's transports hand out a
    stand-in that has no shutdown()."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:  # closed meanwhile: nothing left to reset
        return
    try:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
    finally:
        sock.detach()


class GuardedRequestHandler(RequestHandler):
    """aiohttp's RequestHandler with deadlines on what the server waits for from the client.

    Relies on these attributes of aiohttp 3.14's RequestHandler (web_protocol.py):
    ``_request_count`` (requests parsed on this connection), ``_messages`` (parsed requests with
    their payloads, not yet handled), ``_waiter`` (pending while ``start`` waits for a request)
    and ``_keepalive_handle`` (re-armed by ``start`` after a response when None).
    """

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._limits = manager.limits
        self._head_timer: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None
        self._body_bytes = 0
        self._body_window_start = 0.0
        self._body_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._acked = -1
        self._progress_at = self._loop.time()
        self._send_stalled = False  # at the last send check: bytes waited, none taken since the one before
        self._hung_up = False

    @property
    def waiting_for_request(self) -> bool:
        """No request in progress: idle between requests or receiving a head (as aiohttp's own
        ``_process_keepalive`` decides it may close)."""
        return self._waiter is not None and not self._waiter.done()

    def stalled(self, now: float) -> bool:
        """The client has held this request up for STALLED_S at least: the body's current window
        is behind body_min_rate, or the response waited for it through the last send check."""
        if self._body_timer is not None:  # a body is being read, its window running
            elapsed = now - self._body_window_start
            return elapsed >= STALLED_S and self._body_bytes < max(1.0, self._limits.body_min_rate * elapsed)
        return self._send_stalled and now - self._progress_at >= STALLED_S

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._guard.admit(self):
            transport.close()  # never registered with the server: its connection_lost is a no-op
            return
        super().connection_made(transport)
        if self._limits.header_timeout:
            self._stop_keepalive()  # the first request's head has header_timeout, not keep-alive
            self._head_timer = self._loop.call_later(self._limits.header_timeout, self.hang_up, "header_timeout")
        if self._limits.send_idle_timeout:
            self._arm_send_check()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._guard.forget(self)
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        requests, body = self._request_count, self._body
        super().data_received(data)
        if self._hung_up:
            return
        if self._request_count != requests:  # one or more heads complete (or a bad request)
            self._head_complete()
        elif body is not None:
            self._body_bytes += len(data)
            if body.is_eof():
                self._end_body()
        elif data and self._head_timer is None and self._limits.header_timeout:
            self._stop_keepalive()  # a new request began: its head has header_timeout to arrive
            self._head_timer = self._loop.call_later(self._limits.header_timeout, self.hang_up, "header_timeout")

    def pause_reading(self) -> None:
        super().pause_reading()  # the handler reads the body slower than it comes: not the client's doing
        self._cancel_body_check()

    def resume_reading(self, resume_parser: bool = True) -> None:
        super().resume_reading(resume_parser)  # aiohttp's StreamReader calls it after every read
        if self._body is not None and self._body_timer is None and not self._hung_up:
            self._arm_body_check()  # reading again after a pause: a new window

    async def finish_response(self, request: BaseRequest, resp: StreamResponse,
                              start_time: float | None) -> tuple[StreamResponse, bool]:
        finished = await super().finish_response(request, resp, start_time)
        if self in self._guard.open:
            self._guard.waiting(self)
        return finished

    def hang_up(self, reason: str) -> None:
        """Close this connection (the client is too slow, or idle at the cap): reset it at once
        (nothing lingers in the kernel), then let aiohttp's own error paths release the request."""
        if self._hung_up or self.transport is None:
            return
        self._hung_up = True
        self._cancel_timers()
        self._guard.forget(self)
        self._guard.notice("connection_closed", reason, open=len(self._guard.open))
        sock = self.transport.get_extra_info("socket")
        if sock is not None and sock.fileno() >= 0:
            _reset(sock.fileno())
        if self.waiting_for_request:
            self.force_close()  # no handler runs, so no sendfile uses the descriptor
        else:
            self._loop.call_later(ABORT_AFTER_S, self._abort)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _head_complete(self) -> None:
        self._guard.idle.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._end_body()
        if self._messages:
            payload = self._messages[-1][1]
            if not payload.is_eof():
                self._body = payload
                self._arm_body_check()

    def _stop_keepalive(self) -> None:
        if self._keepalive_handle is not None:
            self._keepalive_handle.cancel()
            self._keepalive_handle = None

    def _arm_body_check(self) -> None:
        self._cancel_body_check()
        self._body_bytes = 0
        self._body_window_start = self._loop.time()
        if self._limits.body_idle_timeout:
            self._body_timer = self._loop.call_later(self._limits.body_idle_timeout, self._check_body)

    def _check_body(self) -> None:
        """End of a window of reading the body: enough bytes came, or the client is too slow."""
        self._body_timer = None
        body, transport = self._body, self.transport
        if body is None or body.is_eof() or transport is None:
            return
        needed = max(1, int(self._limits.body_min_rate * self._limits.body_idle_timeout))
        # Not reading (asyncio pauses a transport during sendfile): the window starts again.
        if transport.is_reading() and self._body_bytes < needed:
            self.hang_up("body_too_slow")
        else:
            self._arm_body_check()

    def _end_body(self) -> None:
        self._body = None
        self._cancel_body_check()

    def _cancel_body_check(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _arm_send_check(self) -> None:
        self._send_timer = self._loop.call_later(
            self._limits.send_idle_timeout / SEND_CHECKS_PER_TIMEOUT, self._check_send)

    def _check_send(self) -> None:
        """Bytes of a response wait for the client: it must take some every send_idle_timeout."""
        self._send_timer = None
        transport = self.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        progress = send_progress(sock) if sock is not None else None
        if transport is None or progress is None:
            return  # not TCP on Linux: no check on this connection
        acked, waiting = progress
        now = self._loop.time()
        stalled = (waiting or transport.get_write_buffer_size() > 0) and acked == self._acked
        if not stalled:
            self._acked, self._progress_at = acked, now
        elif now - self._progress_at >= self._limits.send_idle_timeout:
            self.hang_up("send_stalled")
            return
        self._send_stalled = stalled
        self._arm_send_check()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer, self._send_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = self._send_timer = None
