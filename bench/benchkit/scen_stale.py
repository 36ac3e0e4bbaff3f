"""Installs from stale pages while upstream is healthy, refusing or hanging (issue 11, B1).

A proxy of its own, whose upstream is a switchable relay (benchkit.relay) in front of the
reference, runs with ``fresh_for = 0``: every cached page is stale, so each page request asks
upstream first. It is warmed once (pages and PEP 658 metadata of the chain cached), then for each
tool and each case it is started afresh (a closed circuit breaker, nothing in memory) and a pip or
uv dry-run of the chain is timed:

- healthy, refusing, hanging: the proxy first serves one install with a healthy upstream
  (untimed), as a running server would have, then upstream behaves so. A hanging upstream costs
  the first stale page the stale bound (``stale_timeout``); no later page waits.
- hanging from the start: the proxy starts during the outage; it never waits for upstream.

Every failing case should cost at most 1.2x the healthy one.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit.context import Context
from benchkit.procs import HOST, BenchError, Server, free_port
from benchkit.relay import MODES, Relay
from benchkit.scen_tools import _timed, pip_argv, uv_argv, uv_binary
from benchkit.systems import System, proxy_argv, proxy_has_workers

NAME = "proxy-stale"
# Every page stale; everything else as shipped (stale_timeout, page_deadline, the breaker).
CONFIG = '[upstream]\nurl = "{url}/simple"\nfresh_for = 0\n'


def _start(ctx: Context, relay: Relay, data: Path, log: Path) -> System:
    config = data.parent / "stale.toml"
    config.write_text(CONFIG.format(url=relay.url))
    port = free_port()
    argv = [*proxy_argv(sys.executable), "--host", HOST, "--port", str(port), "--data-dir", str(data),
            "--config", str(config)]
    if ctx.workers and proxy_has_workers(sys.executable):
        argv += ["--workers", str(ctx.workers)]
    system = System("proxy", Server(NAME, argv, log), port, "/pypi/simple/")
    system.server.wait_ready(system.index_url)  # the root page lists private projects: upstream not asked
    return system


def _log_figures(log: Path) -> dict[str, int]:
    """Stale page answers and breaker openings of one run, from the proxy's JSON log lines."""
    stale = opened = 0
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        stale += entry.get("event") == "request" and entry.get("cache") == "stale"
        opened += entry.get("event") == "upstream_circuit_opened"
    return {"stale": stale, "opened": opened}


def _tools(ctx: Context) -> list[tuple[str, Callable[[str], list[str]]]]:
    projects = ctx.scale.chain_names()
    tools: list[tuple[str, Callable[[str], list[str]]]] = [("pip", lambda url: pip_argv(url, projects))]
    if uv := uv_binary():
        tools.append(("uv", lambda url: uv_argv(uv, url, projects)))
    return tools


# (case, upstream mode while timed, whether the proxy served a healthy install first)
CASES = (*((mode, mode, True) for mode in MODES), ("cold_hanging", "hanging", False))


def _measure(ctx: Context, relay: Relay, data: Path, tool: str, argv: Callable[[str], list[str]],
             run: int) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for case, mode, used_first in CASES:
        relay.set_mode("healthy" if used_first else mode)
        log = ctx.work / "run" / NAME / f"{tool}-{case}-r{run}.log"
        log.unlink(missing_ok=True)
        proxy = _start(ctx, relay, data, log)
        try:
            if used_first:
                _timed(argv(proxy.index_url))
                relay.set_mode(mode)
                skip = _log_figures(log)["stale"]
            else:
                skip = 0
            row[f"{case}_s"] = _timed(argv(proxy.index_url))
        finally:
            proxy.stop()
        figures = _log_figures(log)
        row[f"{case}_stale"] = figures["stale"] - skip
        row[f"{case}_opened"] = figures["opened"]
        print(f"  stale-{tool:<10} {case:<12} {row[f'{case}_s']:.2f} s  stale pages {row[f'{case}_stale']}  "
              f"breaker opened {figures['opened']}", flush=True)
    for case, _, _ in CASES[1:]:
        row[f"{case}_ratio"] = row[f"{case}_s"] / row["healthy_s"]
    return row


def stale(ctx: Context, run: int) -> None:
    """pip and uv dry-runs of the chain from stale pages, upstream healthy, refusing, hanging."""
    root = ctx.work / "run" / NAME
    data = root / "data"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    tools = _tools(ctx)
    relay = Relay(ctx.reference.port)
    try:
        proxy = _start(ctx, relay, data, root / "warm.log")
        try:
            for _, argv in tools:  # caches the chain's pages and metadata files
                _timed(argv(proxy.index_url))
        finally:
            proxy.stop()
        for tool, argv in tools:
            table = f"stale-{tool}"
            try:
                ctx.results.add(table, "proxy", _measure(ctx, relay, data, tool, argv, run))
            except BenchError as error:
                ctx.results.fail(table, "proxy", str(error))
                print(f"  {table}: FAILED {error}", flush=True)
    except BenchError as error:
        for tool, _ in tools:
            ctx.results.fail(f"stale-{tool}", "proxy", f"warming failed: {error}")
        print(f"  stale: FAILED warming: {error}", flush=True)
    finally:
        relay.close()
