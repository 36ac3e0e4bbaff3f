"""Front-server mode (issue 16): nginx in front of the proxy with ``[server] front_server =
"nginx"``, configured with what ``pypi-proxy front-config nginx`` prints. The cached 1 MB and
100 MB files (the proxy decides, nginx sends them) and the 5-file page (proxied through nginx),
against nginx serving the same bytes itself and the proxy serving them directly, in one run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchkit import plan
from benchkit.context import HTML, MIB, Context
from benchkit.load import fetch
from benchkit.procs import HOST, BenchError, Server, child_env, free_port
from benchkit.systems import System, nginx_binary, start_proxy

NAME = "proxy-front"


def _start(ctx: Context) -> tuple[System, Server]:
    """The proxy in front-server mode (RSS is sampled on it), and nginx before it: the System's
    port is nginx's."""
    run_dir = ctx.work / "run" / NAME
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    config = run_dir / "proxy.toml"
    config.write_text('[server]\nfront_server = "nginx"\n')
    proxy = start_proxy(ctx.work, ctx.reference, ctx.workers, data_dir=run_dir / "data", name=NAME,
                        extra=["--config", str(config)], label=NAME)
    binary = nginx_binary()
    assert binary is not None  # front() checked
    # front-config reads the proxy's address from its settings: the port serve was given.
    (run_dir / "front.toml").write_text(f'[server]\nfront_server = "nginx"\nport = {proxy.port}\n')
    port = free_port()
    script = Path(sys.executable).parent / "pypi-proxy"
    made = subprocess.run([str(script), "front-config", "nginx", "--config", str(run_dir / "front.toml"),
                           "--data-dir", str(run_dir / "data"), "--listen", f"{HOST}:{port}"],
                          check=False, capture_output=True, text=True, env=child_env())
    if made.returncode != 0:
        proxy.stop()
        raise BenchError(f"front-config failed: {made.stderr}")
    prefix = run_dir / "nginx"
    (prefix / "logs").mkdir(parents=True)
    (prefix / "site.conf").write_text(made.stdout)
    temp = "".join(f"    {kind}_temp_path {prefix}/{kind};\n" for kind in ("client_body", "proxy"))
    user = "user root root;\n" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(f"""{user}daemon off;
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
{temp}    default_type application/octet-stream;
    include {prefix}/site.conf;
}}
""")
    nginx = Server("nginx-front", [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                                   "-e", str(prefix / "logs" / "error.log")], prefix / "logs" / "stdout.log")
    fronted = System(NAME, proxy.server, port, "/pypi/simple/", [*proxy.notes, "nginx in front (X-Accel-Redirect)"])
    nginx.wait_ready(fronted.index_url)
    return fronted, nginx


def front(ctx: Context, run: int) -> None:
    """Cached files and the small page: nginx alone, the proxy alone, nginx in front of the proxy."""
    if nginx_binary() is None:
        print("  front: nginx is not installed (apt-get install nginx): skipped", flush=True)
        return
    direct = ctx.system("proxy")
    fronted, nginx = _start(ctx)
    try:
        systems = [ctx.reference, *([direct] if direct else []), fronted]
        for project in (plan.BLOB_1MB, plan.BLOB_100MB, plan.SMALL):  # the front proxy's cache, warmed
            fetch(fronted.page_url(project), HTML, keep_body=False)
        for project, table in ((plan.BLOB_1MB, "front-file-1mb"), (plan.BLOB_100MB, "front-file-100mb")):
            filename = ctx.tree.files_of(project)[0].filename
            fetch(fronted.file_url(project, filename), keep_body=False)
            for system in systems:
                with ctx.measuring(table, system, {}) as row:
                    url = system.file_url(project, filename)
                    check = fetch(url, keep_body=False)
                    load = ctx.loader.run(url, ctx.scale.file_clients, ctx.scale.duration, {})
                    row.update(mib_s=load.bytes_per_s / MIB, rps=load.rps, p99_ms=load.p99_ms,
                               status=check.status, errors=load.errors)
                    print(f"  {table:<18} {system.name:<12} {load.bytes_per_s / MIB:9.0f} MiB/s", flush=True)
        for system in systems:
            with ctx.measuring("front-page-small-html", system, {}) as row:
                url = system.page_url(plan.SMALL)
                check = fetch(url, HTML)
                load = ctx.loader.run(url, ctx.scale.page_clients, ctx.scale.duration, HTML)
                row.update(rps=load.rps, p50_ms=load.p50_ms, p99_ms=load.p99_ms, status=check.status,
                           errors=load.errors)
                print(f"  {'front-page-small':<18} {system.name:<12} {load.rps:9.0f} req/s", flush=True)
    finally:
        nginx.stop()
        fronted.stop()
