"""HTTP clients of the shared scenario: twine's upload form, a download load that follows
redirects (wrk cannot), polling until a file is listed, and many clients on one cold file."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import statistics
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from benchkit.procs import BenchError
from benchkit.wheels import BuiltFile

JSON_PAGE = {"Accept": "application/vnd.pypi.simple.v1+json"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def redirect_location(url: str) -> str:
    """The absolute URL ``url`` redirects to (a presigned object-store URL); BenchError if no redirect."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.request("GET", parts.path)
        answer = conn.getresponse()
        answer.read()
        location = answer.getheader("Location")
    finally:
        conn.close()
    if answer.status not in (302, 303, 307) or not location:
        raise BenchError(f"{url} answered {answer.status}, not a redirect")
    return urllib.parse.urljoin(url, location)


def upload_form(built: BuiltFile, path: Path) -> aiohttp.FormData:
    """The multipart body twine sends for a wheel (the legacy upload API, as warehouse reads it)."""
    data = path.read_bytes()
    form = aiohttp.FormData()
    for key, value in {":action": "file_upload", "protocol_version": "1", "metadata_version": "2.1",
                       "name": built.project, "version": built.version, "filetype": "bdist_wheel",
                       "pyversion": "py3", "summary": "A benchmark package",
                       "md5_digest": hashlib.md5(data).hexdigest(), "sha256_digest": built.sha256}.items():
        form.add_field(key, value)
    form.add_field("content", data, filename=built.filename, content_type="application/octet-stream")
    return form


async def upload(session: aiohttp.ClientSession, base: str, built: BuiltFile, path: Path,
                 auth: dict[str, str]) -> None:
    async with session.post(f"{base}/pypi/", data=upload_form(built, path), headers=auth) as answer:
        if answer.status != 200:
            raise BenchError(f"upload of {built.filename} to {base}: {answer.status} {(await answer.text())[:200]}")


def upload_all(base: str, files: list[tuple[BuiltFile, Path]], auth: dict[str, str]) -> None:
    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            for built, path in files:
                await upload(session, base, built, path, auth)
    asyncio.run(run())


@dataclass
class Visible:
    upload_ms: list[float]   # each upload's POST, until its 200
    visible_ms: list[float]  # from that 200 until the other replica lists the file
    polls: int


def upload_then_poll(writer: str, reader: str, files: list[tuple[BuiltFile, Path]], auth: dict[str, str],
                     bound: float = 30.0) -> Visible:
    """Upload each file through ``writer``, then poll ``reader``'s JSON page every 5 ms until the
    file is listed (at most ``bound`` seconds each)."""
    async def run() -> Visible:
        out = Visible([], [], 0)
        async with aiohttp.ClientSession() as session:
            for built, path in files:
                started = time.perf_counter()
                await upload(session, writer, built, path, auth)
                stored = time.perf_counter()
                out.upload_ms.append((stored - started) * 1e3)
                page = f"{reader}/pypi/simple/{built.project}/"
                while True:
                    out.polls += 1
                    async with session.get(page, headers=JSON_PAGE) as answer:
                        body = await answer.read()
                    if answer.status == 200 and built.filename.encode() in body:
                        break
                    if time.perf_counter() - stored > bound:
                        raise BenchError(f"{built.filename} not listed on {reader} after {bound:.0f} s")
                    await asyncio.sleep(0.005)
                out.visible_ms.append((time.perf_counter() - stored) * 1e3)
        return out
    return asyncio.run(run())


@dataclass
class Downloads:
    requests: int
    seconds: float
    bytes_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def download_load(url: str, clients: int, seconds: float, size: int) -> Downloads:
    """``clients`` keep-alive clients GET ``url`` for ``seconds``, following redirects (a presigned
    one goes to the object store); a download is an error unless 200 with ``size`` bytes."""
    async def run() -> Downloads:
        latencies: list[float] = []
        state = {"bytes": 0, "errors": 0}
        deadline = time.perf_counter() + seconds

        async def client(session: aiohttp.ClientSession) -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                got = 0
                try:
                    async with session.get(url) as answer:
                        async for chunk in answer.content.iter_chunked(1 << 16):
                            got += len(chunk)
                        ok = answer.status == 200 and got == size
                except aiohttp.ClientError:
                    ok = False
                state["bytes"] += got
                state["errors"] += not ok
                latencies.append((time.perf_counter() - started) * 1e3)

        # Two pools' worth of connections: one to the balancer, one to the store after a redirect.
        connector = aiohttp.TCPConnector(limit=2 * clients, limit_per_host=clients)
        started = time.perf_counter()
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - started
        if not latencies:
            raise BenchError(f"no download completed from {url}")
        cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
        return Downloads(len(latencies), elapsed, state["bytes"] / elapsed, cuts[49], cuts[98], state["errors"])
    return asyncio.run(run())


def many_at_once(urls: list[str]) -> list[tuple[int, int]]:
    """GET every URL at the same time (one client each); (status, bytes) of each."""
    async def one(session: aiohttp.ClientSession, url: str) -> tuple[int, int]:
        try:
            async with session.get(url) as answer:
                size = 0
                async for chunk in answer.content.iter_chunked(1 << 20):
                    size += len(chunk)
                return answer.status, size
        except aiohttp.ClientError:
            return -1, 0

    async def run() -> list[tuple[int, int]]:
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout,
                                         auto_decompress=False) as session:
            return list(await asyncio.gather(*(one(session, url) for url in urls)))
    return asyncio.run(run())
