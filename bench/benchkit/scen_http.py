"""HTTP scenarios: cached pages, 304s, cached files, cold pages and files, one file for many."""

from __future__ import annotations

import asyncio
import statistics
import time

from benchkit import plan
from benchkit.context import HTML, JSON, MIB, PIP_ACCEPT, Context
from benchkit.load import fetch
from benchkit.systems import System, count_requests


def _say(table: str, system: System, text: str) -> None:
    print(f"  {table:<16} {system.name:<7} {text}", flush=True)


# Each page twice: as the plain bytes, and gzip-coded as pip and uv ask for it (issue 11 B7). The
# plain runs say "identity": aiohttp's client (the fallback load) asks for gzip by default.
CODINGS = (("", {"Accept-Encoding": "identity"}), ("-gzip", {"Accept-Encoding": "gzip"}))


def pages(ctx: Context, run: int) -> None:
    """Cached project pages, big and small, HTML and JSON, plain and gzip-coded, under concurrent
    load; bytes is the body of one response as sent (compressed when coded)."""
    for project, size in ((plan.BIG, "big"), (plan.SMALL, "small")):
        for fmt, accept in (("html", HTML), ("json", JSON)):
            for suffix, coding in CODINGS:
                table = f"page-{size}-{fmt}{suffix}"
                headers = {**accept, **coding}
                for system in ctx.systems:
                    with ctx.measuring(table, system, {}) as row:
                        url = system.page_url(project)
                        check = fetch(url, headers)
                        load = ctx.loader.run(url, ctx.scale.page_clients, ctx.scale.duration, headers)
                        row.update(rps=load.rps, p50_ms=load.p50_ms, p99_ms=load.p99_ms,
                                   p99_over_p50=load.p99_ms / load.p50_ms if load.p50_ms else None,
                                   status=check.status, type=check.headers.get("content-type", "").split(";")[0],
                                   encoding=check.headers.get("content-encoding", "identity"),
                                   bytes=check.size, errors=load.errors)
                        _say(table, system, f"{load.rps:9.0f} req/s  p50 {load.p50_ms:.2f} ms  "
                                            f"p99 {load.p99_ms:.2f} ms  {check.size} B {row['encoding']}")


def conditional(ctx: Context, run: int) -> None:
    """If-None-Match with the ETag of a first GET, on the big page."""
    table = "conditional-304"
    for system in ctx.systems:
        with ctx.measuring(table, system, {}) as row:
            url = system.page_url(plan.BIG)
            etag = fetch(url, HTML).headers.get("etag")
            if not etag:
                row.update(status="no ETag")
                _say(table, system, "no ETag: skipped")
                continue
            headers = {**HTML, "If-None-Match": etag}
            check = fetch(url, headers)
            load = ctx.loader.run(url, ctx.scale.page_clients, ctx.scale.duration, headers)
            row.update(rps=load.rps, p50_ms=load.p50_ms, p99_ms=load.p99_ms,
                       p99_over_p50=load.p99_ms / load.p50_ms if load.p50_ms else None, status=check.status,
                       errors=load.errors)
            _say(table, system, f"{load.rps:9.0f} req/s  p50 {load.p50_ms:.2f} ms  p99 {load.p99_ms:.2f} ms  "
                                f"status {check.status}")


def files(ctx: Context, run: int) -> None:
    """Cached files, small and large, under concurrent downloads."""
    for project, table in ((plan.BLOB_1MB, "file-1mb"), (plan.BLOB_100MB, "file-100mb")):
        filename = ctx.tree.files_of(project)[0].filename
        for system in ctx.systems:
            with ctx.measuring(table, system, {}) as row:
                url = system.file_url(project, filename)
                check = fetch(url, keep_body=False)
                load = ctx.loader.run(url, ctx.scale.file_clients, ctx.scale.duration, {})
                row.update(mib_s=load.bytes_per_s / MIB, rps=load.rps, p99_ms=load.p99_ms, status=check.status,
                           errors=load.errors)
                _say(table, system, f"{load.bytes_per_s / MIB:9.0f} MiB/s  status {check.status}")


def cold(ctx: Context, run: int) -> None:
    """First fetch of a page, then of its file, against the same fetched from the upstream directly."""
    table = "cold"
    reference = ctx.reference
    for system in ctx.systems:
        if system is reference:
            continue
        with ctx.measuring(table, system, {}) as row:
            page, page_ref, file, file_ref, statuses = [], [], [], [], set()
            for sample in range(ctx.scale.cold_samples):
                name = plan.cold_name(system.name, run, sample)
                filename = ctx.tree.files_of(name)[0].filename
                page_ref.append(fetch(reference.page_url(name), PIP_ACCEPT).seconds)
                answer = fetch(system.page_url(name), PIP_ACCEPT)
                page.append(answer.seconds)
                statuses.add(answer.status)
                file_ref.append(fetch(reference.file_url(name, filename), keep_body=False).seconds)
                url = system.file_url(name, filename)
                answer = fetch(url, keep_body=False)
                file.append(answer.seconds)
                statuses.add(answer.status)
            row.update(
                page_ms=statistics.median(page) * 1e3, ref_page_ms=statistics.median(page_ref) * 1e3,
                added_page_ms=statistics.median(a - b for a, b in zip(page, page_ref)) * 1e3,
                file_ms=statistics.median(file) * 1e3, ref_file_ms=statistics.median(file_ref) * 1e3,
                added_file_ms=statistics.median(a - b for a, b in zip(file, file_ref)) * 1e3,
                status="/".join(map(str, sorted(statuses))))
            _say(table, system, f"page +{row['added_page_ms']:.2f} ms  file +{row['added_file_ms']:.2f} ms")


def herd(ctx: Context, run: int) -> None:
    """Many clients at once on one large file nobody fetched yet: upstream requests and memory."""
    table = "herd"
    for system in ctx.systems:
        if system is ctx.reference:
            continue
        name = plan.herd_name(system.name, run)
        built = ctx.tree.files_of(name)[0]
        with ctx.measuring(table, system, {}) as row:
            url = system.file_url(name, built.filename)
            path = f"/files/{name}/{built.filename}"
            before = count_requests(ctx.files_log, path)
            started = time.perf_counter()
            outcomes = asyncio.run(_many_downloads(url, ctx.scale.herd_clients))
            elapsed = time.perf_counter() - started
            time.sleep(0.2)  # let the upstream's log line land
            complete = sum(1 for status, size in outcomes if status == 200 and size == built.size)
            row.update(upstream_requests=count_requests(ctx.files_log, path) - before,
                       complete=f"{complete}/{len(outcomes)}", seconds=elapsed,
                       statuses="/".join(sorted({str(s) for s, _ in outcomes})))
            _say(table, system, f"{row['upstream_requests']} upstream request(s), {complete}/{len(outcomes)} "
                                f"complete in {elapsed:.1f} s")


async def _many_downloads(url: str, clients: int) -> list[tuple[int, int]]:
    import aiohttp

    async def one(session: aiohttp.ClientSession) -> tuple[int, int]:
        try:
            async with session.get(url) as response:
                size = 0
                async for chunk in response.content.iter_chunked(1 << 20):
                    size += len(chunk)
                return response.status, size
        except aiohttp.ClientError:
            return -1, 0

    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout,
                                     auto_decompress=False) as session:
        return list(await asyncio.gather(*(one(session) for _ in range(clients))))

