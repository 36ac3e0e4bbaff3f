"""How the proxy tree's memory grows with the projects it serves (issue 16): cached upstream
projects (1k, 10k, 100k at full scale) and private ones (1k, 10k), each page asked for once.

Cached pages are written into a fresh data dir's page cache through the proxy's own storage API
(``PageCache.store_page``, records just fetched, of the reference upstream), which takes a minute
for 100,000 where fetching them through the proxy would take the upstream tree's generation
too; private projects are written as privdata writes them. The proxy (with the benchmark's
workers) then starts on that data dir, and every project page is fetched once as pip fetches it
(JSON), 32 at a time, with the tree's RSS sampled throughout. Run once per invocation: memory is
not noisy the way timing is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

from benchkit import privdata
from benchkit.context import HTML, PIP_ACCEPT, Context
from benchkit.load import fetch
from benchkit.procs import MIB, BenchError, RssSampler, process_tree, rss_bytes
from benchkit.systems import System, start_proxy

TABLE = "memory-growth"
FILES_PER_PROJECT = 3
CLIENTS = 32


def cached_name(i: int) -> str:
    return f"cached-{i:06d}"


def fill_page_cache(data_dir: Path, upstream: System, count: int) -> None:
    """``count`` fresh upstream pages of FILES_PER_PROJECT wheels each, through the storage API."""
    from proxy.core.indexpage import IndexFile, IndexPage
    from proxy.storage.upstream_pages import CachedPage, PageCache, upstream_id

    source = upstream_id(f"{upstream.base}/simple")
    cache = PageCache(data_dir / "cache" / "pages", 1 << 40)
    try:
        now = time.time()
        for i in range(count):
            name = cached_name(i)
            files = tuple(IndexFile(
                filename=f"{name.replace('-', '_')}-1.{v}-py3-none-any.whl",
                url=f"{upstream.base}/files/{name}/{name.replace('-', '_')}-1.{v}-py3-none-any.whl",
                hashes={"sha256": f"{i:032x}{v:032x}"}, requires_python=">=3.8",
                core_metadata={"sha256": f"{v:032x}{i:032x}"}, size=2000 + v) for v in range(FILES_PER_PROJECT))
            page = IndexPage(name, files, tuple(f"1.{v}" for v in range(FILES_PER_PROJECT)))
            cache.store_page(name, CachedPage(200, now, page, content_id=f"{i:024x}", upstream=source))
    finally:
        cache.close()


async def _fetch_all(urls: list[str], headers: dict[str, str]) -> dict[int, int]:
    import aiohttp

    statuses: dict[int, int] = {}
    queue = iter(urls)

    async def client(session: aiohttp.ClientSession) -> None:
        for url in queue:
            async with session.get(url, headers=headers) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as session:
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))
    return statuses


def measure(ctx: Context, label: str, data_dir: Path, names: list[str]) -> dict[str, Any]:
    """Start the proxy on ``data_dir``, fetch every page of ``names`` once; the tree's memory."""
    proxy = start_proxy(ctx.work, ctx.reference, ctx.workers, data_dir=data_dir, name=f"proxy-{label}",
                        label="proxy")
    try:
        started = rss_bytes(process_tree(proxy.server.pid)) / MIB
        sampler = RssSampler({label: proxy.server.pid})
        begun = time.perf_counter()
        with sampler:
            statuses = asyncio.run(_fetch_all([proxy.page_url(n) for n in names], PIP_ACCEPT))
            fetch(proxy.index_url, HTML)  # the project list too
        if set(statuses) != {200}:
            raise BenchError(f"{label}: statuses {statuses}")
        row: dict[str, Any] = {"projects": len(names), "start_rss_mb": started,
                               "served_rss_mb": rss_bytes(process_tree(proxy.server.pid)) / MIB,
                               "seconds": time.perf_counter() - begun, **sampler.figures(label)}
        return row
    finally:
        proxy.stop()


def memory(ctx: Context, run: int) -> None:
    """The table ``memory-growth``: one row per kind and count, with MiB per 1,000 projects."""
    if run > 1:
        return
    work = ctx.work / "growth"
    for count in ctx.scale.growth_cached:
        label = f"cached-{count // 1000}k" if count >= 1000 else f"cached-{count}"
        data_dir = work / label
        shutil.rmtree(data_dir, ignore_errors=True)
        started = time.perf_counter()
        fill_page_cache(data_dir, ctx.reference, count)
        _record(ctx, label, data_dir, [cached_name(i) for i in range(count)], time.perf_counter() - started)
        # Refilled next time in a minute; kept, its ~300 MB would push other scenarios' data
        # (the scale scenario's 10,000 projects) out of the page cache.
        shutil.rmtree(data_dir, ignore_errors=True)
    for count in ctx.scale.growth_private:
        label = f"private-{count // 1000}k" if count >= 1000 else f"private-{count}"
        scale = dataclasses.replace(ctx.scale, name=f"growth-{count}", private_projects=count, many_versions=1)
        data_dir = privdata.ensure_data_dir(work / f"private-{count}", scale)
        names = privdata.project_names(scale)
        _record(ctx, label, data_dir, names, None)
    _slopes(ctx)


def _record(ctx: Context, label: str, data_dir: Path, names: list[str], fill_s: float | None) -> None:
    try:
        row = measure(ctx, label, data_dir, names)
    except BenchError as error:
        ctx.results.fail(TABLE, label, str(error))
        print(f"  {TABLE:<16} {label:<12} FAILED {error}", flush=True)
        return
    row["fill_s"] = fill_s
    ctx.results.add(TABLE, label, row)
    print(f"  {TABLE:<16} {label:<12} start {row['start_rss_mb']:.0f} MiB, served {row['served_rss_mb']:.0f} MiB, "
          f"peak {row['peak_rss_mb']:.0f} MiB (PSS {row['peak_pss_mb']:.0f}) in {row['seconds']:.0f} s", flush=True)


def _slopes(ctx: Context) -> None:
    """MiB per 1,000 more projects between each row and the previous one of its kind."""
    rows = ctx.results.samples.get(TABLE, {})
    for kind in ("cached", "private"):
        previous: dict[str, Any] | None = None
        for label in [label for label in rows if label.startswith(kind)]:
            row = rows[label][-1]
            if previous is not None:
                row["mib_per_1k"] = ((row["served_rss_mb"] - previous["served_rss_mb"])
                                     / (row["projects"] - previous["projects"]) * 1000)
            previous = row


def render(results: Any) -> str:
    """The growth table, in the order measured."""
    rows = results.samples.get(TABLE, {})
    if not rows and TABLE not in results.errors:
        return ""
    lines = ["### Memory growth with the projects served (`memory-growth`, proxy tree, one run)", "",
             "| projects | count | RSS after start MiB | RSS after serving each page once MiB | peak RSS MiB "
             "| peak PSS MiB | MiB per 1k more projects | seconds |", "|---|---|---|---|---|---|---|---|"]
    for label, samples in rows.items():
        row = samples[-1]
        slope = row.get("mib_per_1k")
        lines.append(f"| {label} | {row['projects']} | {row['start_rss_mb']:.0f} | {row['served_rss_mb']:.0f} | "
                     f"{row['peak_rss_mb']:.0f} | {row['peak_pss_mb']:.0f} | "
                     f"{'–' if slope is None else f'{slope:.2f}'} | {row['seconds']:.0f} |")
    for label, message in results.errors.get(TABLE, {}).items():
        lines.append(f"| {label} | failed: {message.splitlines()[0][:150]} |")
    return "\n".join(lines) + "\n"
