#!/usr/bin/env python3
"""Benchmark pypi-proxy against nginx, proxpi and devpi on loopback; see bench/run.

Generates an upstream tree of real wheels, serves it with nginx (the upstream of every other
system and the reference), starts the proxy and the peers whose venvs exist under --work,
warms them, runs each scenario on each system --runs times and prints the medians as markdown
tables, a summary of every page scenario's tail latency and of the proxy tree's memory per
scenario, and the proxy's targets: met, missed and by how much, or not measured and which
scenario measures them. Results also go to <work>/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import (plan, report, scen_front, scen_http, scen_memory, scen_policy, scen_shared, scen_stale, scen_tools,
                      targets, tree)
from benchkit.context import Context
from benchkit.load import Loader
from benchkit.procs import BenchError, install_signal_handlers
from benchkit.systems import System, start_devpi, start_proxpi, start_proxy, start_upstream

SCENARIOS: dict[str, Callable[[Context, int], None]] = {
    "pages": scen_http.pages,
    "conditional": scen_http.conditional,
    "files": scen_http.files,
    "cold": scen_http.cold,
    "herd": scen_http.herd,
    "install": scen_tools.install,
    "scale": scen_tools.scale,
    "stale": scen_stale.stale,
    "policy": scen_policy.policy,
    "memory": scen_memory.memory,
    "shared": scen_shared.shared,
    "front": scen_front.front,
}
PEERS = ("proxpi", "devpi")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / ".work",
                        help="venvs, generated tree, data dirs and results (default: bench/.work)")
    parser.add_argument("--scale", choices=sorted(plan.SCALES), default="full")
    parser.add_argument("--runs", type=int, default=3, help="runs of every scenario; medians are reported")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), metavar="SCENARIO",
                        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="proxy worker processes, if `pypi-proxy serve` has --workers (default: CPUs)")
    parser.add_argument("--no-peers", action="store_true", help="only the upstream and the proxy")
    parser.add_argument("--proxpi-threads", type=int, default=16, help="gunicorn threads for proxpi")
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator: wrk, or the built-in Python client (auto: wrk if installed)")
    parser.add_argument("--upstream-server", choices=("auto", "nginx", "python"), default="auto",
                        help="upstream and reference: nginx, or a small aiohttp server (auto: nginx if installed)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def start_systems(args: argparse.Namespace, work: Path, tree_root: Path) -> tuple[System, list[System], Path]:
    reference, files_log = start_upstream(args.upstream_server, work, tree_root)
    systems = [reference]
    print(f"upstream: {reference.name} at {reference.index_url}", flush=True)
    systems.append(start_proxy(work, reference, args.workers))
    print(f"proxy: {systems[-1].index_url} {' '.join(systems[-1].notes)}", flush=True)
    for peer in () if args.no_peers else PEERS:
        try:
            started = (start_proxpi(work, reference, args.proxpi_threads) if peer == "proxpi"
                       else start_devpi(work, reference))
        except BenchError as error:
            print(f"{peer}: could not start, skipped: {error}", flush=True)
            continue
        if started is None:
            print(f"{peer}: no venv under {work}, skipped (bench/run installs it)", flush=True)
            continue
        systems.append(started)
        print(f"{peer}: {started.index_url}", flush=True)
    return reference, systems, files_log


def versions(work: Path) -> dict[str, str]:
    found = {"python": platform.python_version(), "machine": platform.machine(), "cpus": str(os.cpu_count())}
    for name, argv in (("nginx", ["nginx", "-v"]), ("wrk", ["wrk", "-v"])):
        if shutil.which(argv[0]) or name == "nginx":
            try:
                done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=10)
                found[name] = (done.stdout + done.stderr).strip().splitlines()[0]
            except (OSError, IndexError, subprocess.TimeoutExpired):
                pass
    for venv, dist in (("venv-proxpi", "proxpi"), ("venv-devpi", "devpi-server")):
        python = work / venv / "bin" / "python"
        if python.exists():
            done = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
                                  check=False, capture_output=True, text=True)
            found[dist] = done.stdout.strip()
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    scale = plan.SCALES[args.scale]
    chosen = args.only or list(SCENARIOS)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    tree_root = work / "upstream" / scale.name
    upstream_tree = tree.Tree(tree_root)
    started = time.perf_counter()
    print(f"generating the upstream tree under {tree_root} (kept between runs)", flush=True)
    tree.build_base(upstream_tree, scale)
    peers_wanted = [] if args.no_peers else [p for p in PEERS if (work / f"venv-{p}").exists()]
    tree.build_per_system(upstream_tree, scale, ["proxy", *peers_wanted], args.runs)
    upstream_tree.write_root()
    print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)
    loader = Loader(args.load)
    systems: list[System] = []
    try:
        reference, systems, files_log = start_systems(args, work, tree_root)
        ctx = Context(scale, upstream_tree, loader, reference, systems, files_log, work, args.workers)
        print("warming", flush=True)
        scen_tools.warm(ctx, set(chosen))
        for run in range(1, args.runs + 1):
            print(f"run {run}/{args.runs} (load: {loader.tool})", flush=True)
            for name in chosen:
                SCENARIOS[name](ctx, run)
    finally:
        for system in reversed(systems):
            system.stop()
    order = [s.name for s in systems] + ["proxy-policy", scen_front.NAME, *scen_shared.ROWS]
    check = targets.checklist(ctx.results, reference.name)
    print()
    print(f"## pypi-proxy benchmark: scale {scale.name}, {args.runs} run(s), medians; load: {loader.tool}, "
          f"{os.cpu_count()} CPUs")
    print()
    print(report.render_tables(ctx.results, reference.name, order))
    print(report.render_tails(ctx.results, reference.name, order))
    print(report.render_memory(ctx.results))
    print(scen_memory.render(ctx.results))
    print(check.render())
    if scale.name != "full":
        print(f"(scale {scale.name}: a smoke test; the targets are meant for --scale full)")
    out = work / "results.json"
    out.write_text(json.dumps({
        "scale": scale.name, "runs": args.runs, "load": loader.tool, "reference": reference.name,
        "versions": versions(work), "notes": {s.name: s.notes for s in systems},
        "medians": {t: {s: ctx.results.median(t, s) for s in rows} for t, rows in ctx.results.samples.items()},
        "samples": ctx.results.samples, "errors": ctx.results.errors, "checklist": check.items,
    }, indent=1, default=str))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
