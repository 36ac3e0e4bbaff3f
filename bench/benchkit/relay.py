"""A TCP relay in front of the upstream, switchable between behaving and the two ways upstreams
go wrong: ``healthy`` forwards every connection, ``refusing`` stops listening (connections are
refused), ``hanging`` accepts connections and never answers. It runs an event loop in a thread,
so the synchronous scenarios can switch it between runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from benchkit.procs import HOST, free_port

MODES = ("healthy", "refusing", "hanging")
_CHUNK = 256 * 1024


class Relay:
    def __init__(self, target_port: int, mode: str = "healthy") -> None:
        self.target_port = target_port
        self.port = free_port()
        self.mode = "refusing"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="relay", daemon=True)
        self._thread.start()
        self.set_mode(mode)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def set_mode(self, mode: str) -> None:
        """Switch behaviour; connections of the previous mode are closed (none outlives it)."""
        if mode not in MODES:
            raise ValueError(f"unknown relay mode {mode!r}; one of {', '.join(MODES)}")
        self._call(self._switch(mode))

    def close(self) -> None:
        self._call(self._switch("refusing"))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    async def _switch(self, mode: str) -> None:
        self.mode = mode
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        if mode == "refusing" and self._server is not None:
            self._server.close()
            self._server = None
        elif mode != "refusing" and self._server is None:
            self._server = await asyncio.start_server(self._accept, HOST, self.port, reuse_address=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if self.mode == "hanging":
                while await reader.read(_CHUNK):  # take the request, never answer
                    pass
                return
            target_reader, target_writer = await asyncio.open_connection(HOST, self.target_port)
            self._writers.add(target_writer)
            try:
                await asyncio.gather(_pipe(reader, target_writer), _pipe(target_reader, writer),
                                     return_exceptions=True)
            finally:
                self._writers.discard(target_writer)
        except OSError:
            pass
        finally:
            writer.close()
            self._writers.discard(writer)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
