"""Scenarios with real clients and the proxy alone: warming, pip and uv dry-runs, scale."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit import plan, privdata
from benchkit.context import HTML, JSON, MIB, Context
from benchkit.load import fetch
from benchkit.procs import BenchError, RssSampler, child_env, process_tree, rss_bytes
from benchkit.systems import System, start_proxy


def uv_binary() -> str | None:
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.exists() else shutil.which("uv")


def pip_argv(index_url: str, projects: list[str]) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-cache-dir",
            "--disable-pip-version-check", "--only-binary", ":all:", "--index-url", index_url, *projects]


def uv_argv(uv: str, index_url: str, projects: list[str]) -> list[str]:
    return [uv, "pip", "install", "--dry-run", "--no-cache", "--no-config", "--python", sys.executable,
            "--index-url", index_url, *projects]


def _timed(argv: list[str]) -> float:
    env = child_env({"PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INPUT": "1"})
    started = time.perf_counter()
    done = subprocess.run(argv, check=False, capture_output=True, text=True, env=env, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-8:])
        raise BenchError(f"{Path(argv[0]).name} failed ({done.returncode}):\n{tail}")
    return elapsed


def warm(ctx: Context, scenarios: set[str]) -> None:
    """Fetch every page and file the scenarios use once, through every system."""
    projects = [plan.BIG, plan.SMALL, *ctx.scale.chain_names(), plan.BLOB_1MB, plan.BLOB_100MB]
    for system in ctx.systems:
        started = time.perf_counter()
        try:
            for project in projects:
                for headers in (HTML, JSON):
                    answer = fetch(system.page_url(project), headers, keep_body=False)
                    if answer.status != 200:
                        raise BenchError(f"{system.page_url(project)} answered {answer.status}")
            if scenarios & {"files", "front"}:
                for project in (plan.BLOB_1MB, plan.BLOB_100MB):
                    filename = ctx.tree.files_of(project)[0].filename
                    fetch(system.file_url(project, filename), keep_body=False)
            if "install" in scenarios:
                _install_once(system, ctx.scale.chain_names())
        except BenchError as error:
            print(f"  warm {system.name}: {error}", flush=True)
        print(f"  warmed {system.name} in {time.perf_counter() - started:.1f} s", flush=True)


def _install_once(system: System, projects: list[str]) -> None:
    for argv in (pip_argv(system.index_url, projects),
                 *([uv_argv(uv, system.index_url, projects)] if (uv := uv_binary()) else [])):
        try:
            _timed(argv)
        except BenchError as error:
            print(f"  warm {system.name}: {error}", flush=True)


def install(ctx: Context, run: int) -> None:
    """Warm ``pip install --dry-run`` and ``uv pip install --dry-run`` of the whole chain."""
    projects = ctx.scale.chain_names()
    uv = uv_binary()
    tools: list[tuple[str, Callable[[str], list[str]]]] = [("install-pip", lambda url: pip_argv(url, projects))]
    if uv:
        tools.append(("install-uv", lambda url: uv_argv(uv, url, projects)))
    for table, argv in tools:
        for system in ctx.systems:
            with ctx.measuring(table, system, {}) as row:
                row["seconds"] = _timed(argv(system.index_url))
                print(f"  {table:<16} {system.name:<7} {row['seconds']:.2f} s", flush=True)


def scale(ctx: Context, run: int) -> None:
    """Many private projects: proxy start-up, first and cached render of a many-version page, RSS."""
    table = "scale"
    data_dir = privdata.ensure_data_dir(ctx.work / "scale" / ctx.scale.name, ctx.scale)
    started = time.perf_counter()
    try:
        proxy = start_proxy(ctx.work, ctx.reference, ctx.workers, data_dir=data_dir, name="proxy-scale")
    except BenchError as error:
        ctx.results.fail(table, "proxy", str(error))
        print(f"  {table}: FAILED {error}", flush=True)
        return
    startup = time.perf_counter() - started
    try:
        sampler = RssSampler({"proxy": proxy.server.pid})
        with sampler:
            root = fetch(proxy.index_url, HTML)
            row: dict[str, Any] = {"startup_s": startup, "root_entries": root.body.count(b"<a ")}
            for fmt, headers in (("html", HTML), ("json", JSON)):
                url = proxy.page_url(plan.MANY_VERSIONS)
                first = fetch(url, headers)
                if first.status != 200:
                    raise BenchError(f"{url} answered {first.status}")
                again = [fetch(url, headers) for _ in range(5)]
                row[f"first_{fmt}_ms"] = first.seconds * 1e3
                row[f"cached_{fmt}_ms"] = statistics.median(a.seconds for a in again) * 1e3
                row[f"{fmt}_kib"] = first.size / 1024
                if any(a.headers.get("etag") != first.headers.get("etag") for a in again):
                    row["note"] = "ETag changed between requests"
            row["rss_mb"] = rss_bytes(process_tree(proxy.server.pid)) / MIB
        row.update(sampler.figures("proxy"))
        ctx.results.add(table, "proxy", row)
        print(f"  {table:<16} proxy   start {startup:.2f} s  first page {row['first_html_ms']:.1f} ms  "
              f"cached {row['cached_html_ms']:.1f} ms  RSS {row['rss_mb']:.0f} MiB", flush=True)
    except BenchError as error:
        ctx.results.fail(table, "proxy", str(error))
        print(f"  {table}: FAILED {error}", flush=True)
    finally:
        proxy.stop()
