"""The shared mode (issue 14): replicas of `pypi-proxy serve` on one PostgreSQL database and one
SeaweedFS bucket, behind nginx as a load balancer on loopback, against one node with two workers.

Started afresh for every run (benchkit.shared_services): PostgreSQL, SeaweedFS, four replicas of
one worker each (A and B with ``objects_serve = "stream"``, C and D with ``"redirect"``), nginx
balancing A+B on one port and C+D on another (round robin, keep-alive), and one embedded node
(its own data dir) with ``--workers 2``. What is measured:

- ``shared-page-*``: a cached private 5-file page, through the balancer, from the node, and from
  replica A alone (for scale: what one replica of one worker serves);
- ``shared-file-1mb``: a cached private 1 MB file streamed and redirected (presigned, to
  SeaweedFS), against nginx sending the same bytes from disk (sendfile). "MiB/s" is the bench's
  load tool (wrk), which cannot follow redirects: on the redirect row it gives the balancer's
  302s/s and, on one presigned URL, SeaweedFS's own MiB/s. "MiB/s following" is the bench's Python
  client, the same for all three rows, following the redirect: the end-to-end figure the
  redirect target is judged on (the client's CPU bounds every row of it, nginx's too);
- ``shared-visible``: uploads through A, each polled on B's simple page until listed;
- ``shared-cold``: one cold upstream file, many clients spread over A and B at once; the
  upstream's log counts its file requests.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit import shared_clients as clients
from benchkit.context import HTML, JSON, MIB, Context
from benchkit.load import fetch
from benchkit.procs import HOST, BenchError, Server, child_env, free_port
from benchkit.shared_services import Postgres, SeaweedFS, start_balancer
from benchkit.systems import System, count_requests, proxy_argv, start_proxy
from benchkit.wheels import BuiltFile, WheelSpec, write_wheel

USER, PASSWORD = "bench", "bench-password"
PAGE, BLOB = "shared-small", "shared-blob"
# Rows of the tables, in the report's order (bench.py adds them to its own).
ROWS = ("node-2w", "shared-lb", "replica-a", "shared-stream", "shared-redirect", "shared")
TABLES = (  # (key, title, columns, ratio_of) of benchkit.report.Table
    *((f"shared-page-{fmt}", (f"Shared mode: cached private 5-file page, {fmt.upper()}: two replicas (1 worker "
                              "each) behind nginx vs one node with 2 workers; replica A alone"),
       (("rps", "req/s", "{:.0f}"), ("p50_ms", "p50 ms", "{:.2f}"), ("p99_ms", "p99 ms", "{:.2f}"),
        ("status", "status", "{}"), ("errors", "errors", "{:.0f}")), None) for fmt in ("html", "json")),
    ("shared-file-1mb", ("Shared mode: cached private 1 MB file through the balancer, streamed and redirected, "
                         "vs nginx from disk"),
     (("mib_s", "MiB/s", "{:.0f}"), ("redirect_rps", "302s/s", "{:.0f}"),
      ("store_mib_s", "presigned URL MiB/s", "{:.0f}"), ("follow_mib_s", "MiB/s following", "{:.0f}"),
      ("follow_p99_ms", "p99 ms following", "{:.1f}"), ("status", "status", "{}"),
      ("errors", "errors", "{:.0f}")), None),  # the targets compare each row with nginx's in its column
    ("shared-visible", "Shared mode: upload through replica A until listed on replica B",
     (("p50_ms", "p50 ms", "{:.1f}"), ("p99_ms", "p99 ms", "{:.1f}"), ("max_ms", "max ms", "{:.1f}"),
      ("upload_p50_ms", "upload p50 ms", "{:.1f}"), ("uploads", "uploads", "{:.0f}")), None),
    ("shared-cold", "Shared mode: one cold upstream file, clients spread over replicas A and B at once",
     (("upstream_requests", "upstream requests", "{:.0f}"), ("complete", "complete", "{}"),
      ("seconds", "seconds", "{:.1f}"), ("statuses", "statuses", "{}")), None),
)


@dataclass
class Cluster:
    root: Path
    lb: System           # nginx over A and B (stream)
    lb_redirect: System  # nginx over C and D (redirect)
    node: System         # embedded, --workers 2
    replicas: dict[str, System]
    stops: list[Callable[[], None]] = field(default_factory=list)


def _cli(config: list[str], *args: str, stdin: str | None = None) -> None:
    done = subprocess.run([*proxy_argv(sys.executable)[:-1], *args, *config], input=stdin, capture_output=True,
                          text=True, env=child_env(), timeout=120, check=False, cwd="/")
    if done.returncode != 0:
        raise BenchError(f"pypi-proxy {' '.join(args)}: {done.stdout}{done.stderr}")


def _replica(root: Path, name: str, config: Path) -> System:
    port = free_port()
    argv = [*proxy_argv(sys.executable), "--host", HOST, "--port", str(port), "--data-dir", str(root / name / "data"),
            "--config", str(config), "--workers", "1"]
    return System(f"replica-{name}", Server(f"replica-{name}", argv, root / name / "server.log"), port,
                  "/pypi/simple/")


def _config(root: Path, serve: str, database: str, store: SeaweedFS, upstream: System) -> Path:
    path = root / f"{serve}.toml"
    path.write_text(f'[storage]\ndatabase = "{database}"\n{store.storage_toml("bench", "blobs", serve)}'
                    f'[upstream]\nurl = "{upstream.base}/simple"\n')
    return path


@contextmanager
def cluster(ctx: Context) -> Iterator[Cluster]:
    """Everything started, the user created; all stopped after the block, whatever happened."""
    root = ctx.work / "run" / "shared"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    stops: list[Callable[[], None]] = []
    try:
        pg = Postgres()
        stops.append(pg.stop)
        pg.start()
        store = SeaweedFS(root / "seaweedfs")
        stops.append(store.stop)
        store.wait_ready()
        store.create_bucket("bench")
        configs = {serve: _config(root, serve, pg.url(), store, ctx.reference) for serve in ("stream", "redirect")}
        shared = ["--config", str(configs["stream"])]
        _cli(shared, "db", "upgrade")
        _cli(shared, "user", "add", USER, "--password-stdin", stdin=PASSWORD + "\n")
        replicas = {}
        for name, serve in (("a", "stream"), ("b", "stream"), ("c", "redirect"), ("d", "redirect")):
            replicas[name] = _replica(root, name, configs[serve])
            stops.append(replicas[name].stop)
        node = start_proxy(ctx.work, ctx.reference, 2, name="proxy-node2w", label="node-2w")
        stops.append(node.stop)
        _cli(["--data-dir", str(ctx.work / "run" / "proxy-node2w" / "data")], "user", "add", USER,
             "--password-stdin", stdin=PASSWORD + "\n")
        lb_port, lb_redirect_port = free_port(), free_port()
        balancer = start_balancer(root / "balancer", {lb_port: [replicas["a"].port, replicas["b"].port],
                                                      lb_redirect_port: [replicas["c"].port, replicas["d"].port]},
                                  root / "disk")
        stops.append(balancer.stop)
        lb = System("shared-lb", balancer, lb_port, "/pypi/simple/")
        lb_redirect = System("shared-redirect", balancer, lb_redirect_port, "/pypi/simple/")
        for system in (*replicas.values(), lb, lb_redirect):
            system.server.wait_ready(system.index_url)
        yield Cluster(root, lb, lb_redirect, node, replicas, stops)
    finally:
        for stop in reversed(stops):
            stop()


def _wheels(directory: Path, specs: list[WheelSpec]) -> list[tuple[BuiltFile, Path]]:
    return [(built, directory / built.filename) for built in (write_wheel(directory, spec) for spec in specs)]


def _record(ctx: Context, table: str, name: str, measure: Callable[[], dict[str, Any]]) -> None:
    try:
        row = measure()
    except Exception as error:  # noqa: BLE001 - one failing measurement must not stop the others
        ctx.results.fail(table, name, f"{type(error).__name__}: {error}")
        print(f"  {table:<18} {name:<15} FAILED {type(error).__name__}: {error}", flush=True)
        return
    ctx.results.add(table, name, row)
    print(f"  {table:<18} {name:<15} " + "  ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                                 for k, v in row.items()), flush=True)


def shared(ctx: Context, run: int) -> None:
    """Pages, a file streamed and redirected, upload-to-visible and a cold file, in shared mode."""
    try:
        with cluster(ctx) as c:
            auth = clients.basic(USER, PASSWORD)
            page = _wheels(c.root / "dists", [WheelSpec(PAGE, f"1.{i}") for i in range(ctx.scale.small_files)])
            blob = _wheels(c.root / "dists", [WheelSpec(BLOB, "1.0", payload_size=ctx.scale.file_small)])
            clients.upload_all(c.replicas["a"].base, page + blob, auth)
            clients.upload_all(c.node.base, page, auth)
            (c.root / "disk").mkdir()
            shutil.copy(blob[0][1], c.root / "disk" / blob[0][0].filename)
            _pages(ctx, c)
            _files(ctx, c, blob[0][0])
            _visible(ctx, c, run, auth)
            _cold(ctx, c, run)
    except BenchError as error:
        for key, *_ in TABLES:
            if not ctx.results.samples.get(key):
                ctx.results.fail(key, "shared", f"set-up failed: {error}")
        print(f"  shared: FAILED {error}", flush=True)


def _pages(ctx: Context, c: Cluster) -> None:
    for fmt, accept in (("html", HTML), ("json", JSON)):
        for system in (c.node, c.lb, c.replicas["a"]):  # A alone: what the balancer adds up
            url = system.page_url(PAGE)
            for _ in range(20):  # each replica and worker loads and renders its copy
                fetch(url, accept, keep_body=False)

            def measure(url: str = url, accept: dict[str, str] = accept) -> dict[str, Any]:
                check = fetch(url, accept)
                if check.status != 200:
                    raise BenchError(f"{url} answered {check.status}")
                load = ctx.loader.run(url, ctx.scale.page_clients, ctx.scale.duration, accept)
                return {"rps": load.rps, "p50_ms": load.p50_ms, "p99_ms": load.p99_ms, "status": check.status,
                        "errors": load.errors}
            _record(ctx, f"shared-page-{fmt}", system.name, measure)


def _files(ctx: Context, c: Cluster, built: BuiltFile) -> None:
    nginx_url = f"{c.lb.base}/disk/{built.filename}"
    for name, url in (("nginx", nginx_url), ("shared-stream", c.lb.file_url(BLOB, built.filename)),
                      ("shared-redirect", c.lb_redirect.file_url(BLOB, built.filename))):
        def measure(url: str = url, name: str = name) -> dict[str, Any]:
            first = fetch(url)  # follows the redirect
            if first.status != 200 or first.size != built.size:
                raise BenchError(f"{url}: {first.status}, {first.size} bytes of {built.size}")
            row: dict[str, Any] = {"status": first.status}
            load = ctx.loader.run(url, ctx.scale.file_clients, ctx.scale.duration, {})
            if name == "shared-redirect":  # the load tool counts 302s; the store's part on its own
                store = ctx.loader.run(clients.redirect_location(url), ctx.scale.file_clients, ctx.scale.duration, {})
                row.update(redirect_rps=load.rps, store_mib_s=store.bytes_per_s / MIB)
            else:
                row["mib_s"] = load.bytes_per_s / MIB
            follow = clients.download_load(url, ctx.scale.file_clients, ctx.scale.duration, built.size)
            row.update(follow_mib_s=follow.bytes_per_s / MIB, follow_p99_ms=follow.p99_ms, errors=follow.errors)
            return row
        _record(ctx, "shared-file-1mb", name, measure)


def _visible(ctx: Context, c: Cluster, run: int, auth: dict[str, str]) -> None:
    project = f"visible-r{run}"
    files = _wheels(c.root / "dists", [WheelSpec(project, f"1.{i}") for i in range(ctx.scale.herd_clients)])

    def measure() -> dict[str, Any]:
        seen = clients.upload_then_poll(c.replicas["a"].base, c.replicas["b"].base, files, auth)
        cuts = statistics.quantiles(seen.visible_ms, n=100, method="inclusive")  # p99 ≤ max
        return {"p50_ms": cuts[49], "p99_ms": cuts[98], "max_ms": max(seen.visible_ms),
                "upload_p50_ms": statistics.median(seen.upload_ms), "uploads": len(files)}
    _record(ctx, "shared-visible", "shared", measure)


def _cold(ctx: Context, c: Cluster, run: int) -> None:
    name = f"shared-cold-r{run}"
    built = ctx.tree.ensure(name, [WheelSpec(name, "1.0", payload_size=max(ctx.scale.file_large // 10, MIB))])[0]
    a, b = c.replicas["a"], c.replicas["b"]

    def measure() -> dict[str, Any]:
        urls = [a.file_url(name, built.filename), b.file_url(name, built.filename)]  # each caches the page
        path = f"/files/{name}/{built.filename}"
        before = count_requests(ctx.files_log, path)
        started = time.perf_counter()
        outcomes = clients.many_at_once([urls[i % 2] for i in range(ctx.scale.herd_clients)])
        elapsed = time.perf_counter() - started
        time.sleep(0.2)  # let the upstream's log line land
        complete = sum(1 for status, size in outcomes if status == 200 and size == built.size)
        return {"upstream_requests": count_requests(ctx.files_log, path) - before,
                "complete": f"{complete}/{len(outcomes)}", "seconds": elapsed,
                "statuses": "/".join(sorted({str(s) for s, _ in outcomes}))}
    _record(ctx, "shared-cold", "shared", measure)


def targets(get: Callable[[str, str, str], Any], item: Callable[[str, str | None, bool | None], None]) -> None:
    """Issue 14's targets for the shared mode, for benchkit.report's checklist."""
    for fmt in ("html", "json"):
        lb, node = get(f"shared-page-{fmt}", "shared-lb", "rps"), get(f"shared-page-{fmt}", "node-2w", "rps")
        known = lb is not None and node is not None
        item(f"shared: 5-file page {fmt.upper()} through the balancer ≥ one node with 2 workers",
             f"{lb / node:.0%} ({lb:.0f} vs {node:.0f} req/s)" if known else None, lb >= node if known else None)
    for row, metric, share, how in (("shared-redirect", "follow_mib_s", 0.8, "redirect, client following"),
                                    ("shared-stream", "mib_s", 0.5, "stream")):
        mine, base = get("shared-file-1mb", row, metric), get("shared-file-1mb", "nginx", metric)
        known = mine is not None and base is not None
        item(f"shared: 1 MB file ({how}) ≥ {share:.0%} of nginx from disk",
             f"{mine / base:.0%} ({mine:.0f} vs {base:.0f} MiB/s)" if known else None,
             mine >= share * base if known else None)
    p99 = get("shared-visible", "shared", "p99_ms")
    item("shared: upload on A listed on B, p99 ≤ 1 s", None if p99 is None else f"p99 {p99:.0f} ms",
         None if p99 is None else p99 <= 1000)
    count = get("shared-cold", "shared", "upstream_requests")
    item("shared: cold file, clients on both replicas → 1 upstream request",
         None if count is None else f"{count:.0f}", None if count is None else count == 1)
