"""Load generation: wrk when installed, else a small asyncio client; and single timed fetches."""

from __future__ import annotations

import asyncio
import http.client
import re
import shutil
import statistics
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field

from benchkit.procs import HOST, BenchError, child_env

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
SIZES = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


@dataclass
class LoadResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    bytes_per_s: float
    errors: int = 0
    tool: str = "wrk"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    size: int
    seconds: float
    url: str
    body: bytes = field(default=b"", repr=False)


def fetch(url: str, headers: dict[str, str] | None = None, keep_body: bool = True, timeout: float = 300,
          redirects: int = 5) -> Answer:
    """One GET on a new connection, following redirects; time until the last byte is read."""
    started = time.perf_counter()
    for _ in range(redirects + 1):
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=timeout)
        try:
            conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {})
            response = conn.getresponse()
            body, size = b"", 0
            while chunk := response.read(1 << 20):
                size += len(chunk)
                if keep_body:
                    body += chunk
            answer_headers = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        if response.status in (301, 302, 303, 307, 308) and "location" in answer_headers:
            url = urllib.parse.urljoin(url, answer_headers["location"])
            continue
        return Answer(response.status, answer_headers, size, time.perf_counter() - started, url, body)
    raise BenchError(f"too many redirects from {url}")


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise BenchError(f"cannot read wrk latency {text!r}")
    return float(match[1]) * UNITS[match[2]]


def _bytes(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(B|KB|MB|GB|TB)", text)
    if not match:
        raise BenchError(f"cannot read wrk size {text!r}")
    return float(match[1]) * SIZES[match[2]]


def parse_wrk(output: str) -> LoadResult:
    """Requests/s, p50/p99 (from --latency) and transfer/s of wrk's report."""
    def grab(pattern: str) -> str:
        match = re.search(pattern, output, re.MULTILINE)
        if not match:
            raise BenchError(f"unexpected wrk output (no {pattern!r}):\n{output}")
        return match[1]
    total = re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", output, re.MULTILINE)
    if not total:
        raise BenchError(f"unexpected wrk output:\n{output}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    failed = int(errors[1]) if errors else 0
    if socket_errors:
        failed += sum(int(n) for n in socket_errors.groups())
    return LoadResult(
        requests=int(total[1]), seconds=_ms(total[2]) / 1e3, rps=float(grab(r"^Requests/sec:\s+([\d.]+)")),
        p50_ms=_ms(grab(r"^\s+50%\s+(\S+)")), p99_ms=_ms(grab(r"^\s+99%\s+(\S+)")),
        bytes_per_s=_bytes(grab(r"^Transfer/sec:\s+(\S+)")), errors=failed)


def run_wrk(url: str, clients: int, seconds: int, headers: dict[str, str]) -> LoadResult:
    threads = max(1, min(2, clients))
    argv = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    done = subprocess.run([*argv, url], check=False, capture_output=True, text=True, env=child_env(), timeout=seconds + 120)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def run_python_load(url: str, clients: int, seconds: float, headers: dict[str, str]) -> LoadResult:
    """The fallback when wrk is missing: ``clients`` keep-alive connections for ``seconds``."""
    return asyncio.run(_python_load(url, clients, seconds, headers))


async def _python_load(url: str, clients: int, seconds: float, headers: dict[str, str]) -> LoadResult:
    import aiohttp  # only the fallback needs it; it is installed with the proxy

    latencies: list[float] = []
    state = {"bytes": 0, "errors": 0}
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                async with session.get(url, headers=headers, allow_redirects=False) as response:
                    async for chunk in response.content.iter_chunked(1 << 16):
                        state["bytes"] += len(chunk)
                    if response.status >= 400:
                        state["errors"] += 1
            except aiohttp.ClientError:
                state["errors"] += 1
            latencies.append((time.perf_counter() - started) * 1e3)

    connector = aiohttp.TCPConnector(limit=clients)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    if not latencies:
        raise BenchError(f"no request completed against {url}")
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return LoadResult(len(latencies), elapsed, len(latencies) / elapsed, cuts[49], cuts[98],
                      state["bytes"] / elapsed, state["errors"], tool="python")


class Loader:
    """Runs load with wrk, or the Python client when wrk is missing or not wanted."""

    def __init__(self, prefer: str) -> None:
        have_wrk = shutil.which("wrk") is not None
        if prefer == "wrk" and not have_wrk:
            raise BenchError("--load wrk: wrk is not installed (apt-get install wrk)")
        self.tool = "wrk" if prefer in ("wrk", "auto") and have_wrk else "python"

    def run(self, url: str, clients: int, seconds: int, headers: dict[str, str]) -> LoadResult:
        if self.tool == "wrk":
            return run_wrk(url, clients, seconds, headers)
        return run_python_load(url, clients, seconds, headers)
