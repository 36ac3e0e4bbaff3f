"""uvloop's loop with the two things it lacks for this server: a ``sendfile`` (the kernel copies
cached files to the client, as on asyncio) and a clock finer than a millisecond.

uvloop (0.23) has no ``loop.sendfile``: it raises NotImplementedError, and aiohttp's FileResponse
then reads the file through a thread in 256 KiB chunks and writes each: half the throughput of
sendfile on this machine (1 MB and 100 MB files). This adds it, for plain TCP and Unix
transports, the way asyncio's selector loop does it: wait until the transport has written all it
holds (the response's headers), then ``os.sendfile`` on the socket, waiting for room whenever the
socket is full. uvloop refuses to watch a descriptor one of its transports owns, so the socket is
watched through a duplicate of its descriptor (the same socket).

Its ``time()`` is libuv's clock: whole milliseconds, from the coarse monotonic clock (a tick of
up to 4 ms). aiohttp times each request with ``loop.time()`` for the access log's ``ms`` and the
latency histogram (whose first buckets are 1 and 2.5 ms): here it is ``time.monotonic()``, as on
asyncio's loop, the same clock at full resolution (timers still run on libuv's).
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from typing import IO, Any

import uvloop
from uvloop.loop import TCPTransport, UnixTransport  # type: ignore[attr-defined]  # not in its stubs

# Bytes per sendfile call: the kernel sends at most this much at once anyway (0x7ffff000 on Linux).
MAX_BLOCK = 2**30


class FastLoop(uvloop.Loop):
    """uvloop's loop, with ``sendfile`` done by the kernel for plain TCP and Unix transports, and
    ``time()`` at the monotonic clock's full resolution."""

    def time(self) -> float:
        """Seconds of the monotonic clock (the epoch of libuv's, which runs the timers)."""
        return time.monotonic()

    async def sendfile(self, transport: asyncio.BaseTransport, file: IO[bytes], offset: int = 0,
                       count: int | None = None, *, fallback: bool = True) -> int:
        """Send ``count`` bytes (None: to the end) of ``file`` from ``offset`` over ``transport``,
        as ``asyncio.AbstractEventLoop.sendfile``: returns the bytes sent, and leaves the file's
        position after them. Raises NotImplementedError for other transports (TLS, pipes) or a
        file without a descriptor, whatever ``fallback`` (uvloop has no fallback of its own;
        aiohttp has one); ConnectionError when the peer goes away or the transport closes."""
        if not isinstance(transport, (TCPTransport, UnixTransport)):
            raise NotImplementedError("sendfile needs a plain TCP or Unix transport (not TLS)")
        sock = transport.get_extra_info("socket")
        try:
            source = file.fileno()
        except (AttributeError, io.UnsupportedOperation):
            source = None
        if sock is None or source is None:
            raise NotImplementedError("sendfile needs a socket and a file with a descriptor")
        if transport.is_closing():
            raise ConnectionResetError("the transport is closing")
        fd = os.dup(sock.fileno())
        sent = 0
        try:
            await self._flushed(transport, fd)
            while count is None or sent < count:
                block = MAX_BLOCK if count is None else min(count - sent, MAX_BLOCK)
                try:
                    done = os.sendfile(fd, source, offset + sent, block)
                except BlockingIOError:
                    await self._writable(fd)
                    continue
                if done == 0:  # the end of the file
                    break
                sent += done
            return sent
        finally:
            os.close(fd)
            if sent:
                file.seek(offset + sent)

    async def _flushed(self, transport: asyncio.WriteTransport, fd: int) -> None:
        """Until ``transport`` holds nothing unwritten: its bytes go before the file's."""
        while transport.get_write_buffer_size():
            if transport.is_closing():
                raise ConnectionResetError("the transport closed before its data was sent")
            await self._writable(fd)  # room in the socket: uvloop writes what it holds
            await asyncio.sleep(0)  # one turn of the loop, in which it does

    async def _writable(self, fd: int) -> None:
        """Until the socket ``fd`` has room to write (or is closed: the next write then fails)."""
        ready = self.create_future()
        self.add_writer(fd, _set, ready)
        try:
            await ready
        finally:
            self.remove_writer(fd)


def _set(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)
