"""A bare HTTP/1.x client for tests that must see exactly how a response ends: whether a client
of that HTTP version could take it as complete (issue 12 M4, STANDARDS H5)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from multidict import CIMultiDict


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: CIMultiDict[str]
    body: bytes
    framing: str  # "length" (Content-Length), "chunked", "close" (ends with the connection), "none" (HEAD)
    complete: bool  # whether it ended as a complete response of its framing does

    @property
    def clean_end(self) -> bool:
        """A client would take the body as whole: with "close" framing (HTTP/1.0 without a
        length) always, as it cannot tell a broken connection from the end."""
        return self.complete


async def request(host: str, port: int, path: str, method: str = "GET", version: str = "1.1",
                  headers: dict[str, str] | None = None, timeout: float = 30.0) -> RawResponse:
    """One request on its own connection (``Connection: close``), read to the connection's end."""
    reader, writer = await asyncio.open_connection(host, port)
    lines = [f"{method} {path} HTTP/{version}", f"Host: {host}:{port}", "Connection: close",
             *(f"{name}: {value}" for name, value in (headers or {}).items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), timeout)  # to the end of the connection
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass
    return parse(raw, method)


def parse(raw: bytes, method: str = "GET") -> RawResponse:
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = CIMultiDict((name, value) for name, _, value in (line.partition(": ") for line in lines))
    status = int(status_line.split()[1])
    if method == "HEAD" or status in (204, 304):
        return RawResponse(status, headers, b"", "none", True)
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        body, complete = _dechunk(rest)
        return RawResponse(status, headers, body, "chunked", complete)
    if "Content-Length" in headers:
        length = int(headers["Content-Length"])
        return RawResponse(status, headers, rest[:length], "length", len(rest) >= length)
    return RawResponse(status, headers, rest, "close", True)


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    """The chunks' bytes, and whether the final (empty) chunk arrived."""
    body = bytearray()
    position = 0
    while True:
        end = data.find(b"\r\n", position)
        if end < 0:
            return bytes(body), False
        size = int(data[position:end].split(b";")[0], 16)
        start = end + 2
        if size == 0:
            return bytes(body), data[start:start + 2] == b"\r\n"
        if len(data) < start + size + 2:
            body += data[start:start + size]
            return bytes(body), False
        body += data[start:start + size]
        position = start + size + 2
