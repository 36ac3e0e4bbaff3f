"""The systems under test, each a child process on its own loopback port, and how to address them."""

from __future__ import annotations

import html.parser
import os
import shutil
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from benchkit import upstream_server
from benchkit.load import fetch
from benchkit.procs import HOST, BenchError, Server, child_env, free_port


@dataclass
class System:
    """A running system: where its index is, and its process (for RSS and stopping)."""

    name: str
    server: Server
    port: int
    index_path: str  # the simple index root, with a trailing slash
    notes: list[str] = field(default_factory=list)
    _file_urls: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def index_url(self) -> str:
        return self.base + self.index_path

    def page_url(self, project: str) -> str:
        return f"{self.index_url}{project}/"

    def file_url(self, project: str, filename: str) -> str:
        """The URL this system lists for ``filename``, read from its HTML page (fetched once)."""
        key = (project, filename)
        if key not in self._file_urls:
            page = fetch(self.page_url(project), {"Accept": "text/html"})
            if page.status != 200:
                raise BenchError(f"{self.name}: {self.page_url(project)} answered {page.status}")
            for href in _hrefs(page.body.decode()):
                url = urllib.parse.urljoin(page.url, href).split("#", 1)[0]
                name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
                self._file_urls[(project, name)] = url
        if key not in self._file_urls:
            raise BenchError(f"{self.name}: {filename} is not listed on {self.page_url(project)}")
        return self._file_urls[key]

    def stop(self) -> None:
        self.server.stop()


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [value for name, value in attrs if name == "href" and value]


def _hrefs(text: str) -> list[str]:
    parser = _Links()
    parser.feed(text)
    return parser.hrefs


# --- the upstream (also the reference): nginx, or a small aiohttp server when nginx is missing

def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def nginx_conf(prefix: Path, tree_root: Path, port: int) -> str:
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers must read the tree
    return f"""{user}daemon off;
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    etag on;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    types {{ text/html html; application/vnd.pypi.simple.v1+json json; }}
    default_type application/octet-stream;
    # PEP 691: JSON when the client asks for it, else PEP 503 HTML.
    map $http_accept $simple_page {{
        default index.html;
        "~application/vnd\\.pypi\\.simple\\.v1\\+json" index.json;
    }}
    log_format files '$request_method $uri $status $body_bytes_sent';
    server {{
        listen {HOST}:{port};
        root {tree_root};
        location ~ ^/simple/[^/]+$ {{ return 301 $uri/; }}
        location /simple/ {{
            add_header Vary Accept;
            try_files $uri$simple_page =404;
        }}
        location /files/ {{
            access_log {prefix}/logs/files.log files;
        }}
    }}
}}
"""


def start_upstream(kind: str, work: Path, tree_root: Path) -> tuple[System, Path]:
    """nginx (``kind`` nginx/auto when installed) or the Python fallback; and its /files/ log."""
    prefix = work / "run" / "upstream"
    shutil.rmtree(prefix, ignore_errors=True)
    for sub in ("logs", "tmp"):
        (prefix / sub).mkdir(parents=True)
    files_log = prefix / "logs" / "files.log"
    port = free_port()
    binary = nginx_binary()
    if kind == "nginx" and binary is None:
        raise BenchError("--upstream-server nginx: nginx is not installed (apt-get install nginx-light)")
    if kind in ("nginx", "auto") and binary is not None:
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_conf(prefix, tree_root, port))
        server = Server("nginx", [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs/error.log")],
                        prefix / "logs" / "stdout.log")
        name = "nginx"
    else:
        server = Server("static", [sys.executable, upstream_server.__file__, "--root", str(tree_root),
                                   "--port", str(port), "--files-log", str(files_log)],
                        prefix / "logs" / "stdout.log", env={"PYTHONPATH": str(Path(__file__).parent.parent)})
        name = "static"
    system = System(name, server, port, "/simple/")
    server.wait_ready(system.index_url)
    return system, files_log


def count_requests(files_log: Path, path: str) -> int:
    """GETs of ``path`` in the upstream's /files/ log."""
    try:
        lines = files_log.read_text().splitlines()
    except FileNotFoundError:
        return 0
    return sum(1 for line in lines if line.split()[:2] == ["GET", path])


# --- the proxy

def proxy_argv(python: str) -> list[str]:
    """The ``pypi-proxy`` installed beside ``python`` (never a ``proxy`` package of the cwd)."""
    script = Path(python).parent / "pypi-proxy"
    if script.exists():
        return [str(script), "serve"]
    return [python, "-c", "import sys; from proxy.cli import main; sys.exit(main())", "serve"]


def proxy_has_workers(python: str) -> bool:
    done = subprocess.run([*proxy_argv(python), "--help"], check=False, capture_output=True, text=True, env=child_env(),
                          cwd="/")
    return "--workers" in done.stdout


def start_proxy(work: Path, upstream: System, workers: int | None, data_dir: Path | None = None,
                name: str = "proxy", extra: list[str] | None = None, label: str = "proxy") -> System:
    port = free_port()
    if data_dir is None:
        shutil.rmtree(work / "run" / name, ignore_errors=True)  # every invocation starts cold
    data = data_dir or work / "run" / name / "data"
    argv = [*proxy_argv(sys.executable), "--host", HOST, "--port", str(port), "--data-dir", str(data),
            "--upstream", f"{upstream.base}/simple", *(extra or [])]
    notes = []
    if workers and proxy_has_workers(sys.executable):
        argv += ["--workers", str(workers)]
        notes.append(f"--workers {workers}")
    elif workers:
        notes.append("serve has no --workers: one process")
    server = Server(name, argv, work / "run" / name / "server.log")
    system = System(label, server, port, "/pypi/simple/", notes)
    system.server.wait_ready(system.index_url)
    return system


# --- proxpi: Flask under gunicorn, one process (its caches are per process), threads

def start_proxpi(work: Path, upstream: System, threads: int) -> System | None:
    gunicorn = work / "venv-proxpi" / "bin" / "gunicorn"
    if not gunicorn.exists():
        return None
    port = free_port()
    root = work / "run" / "proxpi"
    shutil.rmtree(root, ignore_errors=True)
    (root / "cache").mkdir(parents=True)
    env = {"PROXPI_INDEX_URL": f"{upstream.base}/simple/", "PROXPI_CACHE_DIR": str(root / "cache"),
           "PROXPI_LOGGING_LEVEL": "WARNING"}
    server = Server("proxpi", [str(gunicorn), "--bind", f"{HOST}:{port}", "--workers", "1",
                               "--threads", str(threads), "proxpi.server:app"], root / "server.log", env=env)
    system = System("proxpi", server, port, "/index/", [f"gunicorn 1 worker, {threads} threads"])
    server.wait_ready(system.index_url)
    return system


# --- devpi-server: root/pypi as a mirror of our upstream

def start_devpi(work: Path, upstream: System) -> System | None:
    bin_dir = work / "venv-devpi" / "bin"
    if not (bin_dir / "devpi-server").exists():
        return None
    root = work / "run" / "devpi"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    serverdir, clientdir = root / "server", root / "client"
    _run([str(bin_dir / "devpi-init"), "--serverdir", str(serverdir), "--no-root-pypi", "--root-passwd", ""],
         "devpi-init")
    port = free_port()
    server = Server("devpi", [str(bin_dir / "devpi-server"), "--serverdir", str(serverdir), "--host", HOST,
                              "--port", str(port)], root / "server.log")
    system = System("devpi", server, port, "/root/pypi/+simple/", ["waitress, 50 threads (default)"])
    server.wait_ready(f"{system.base}/+api")
    client = [str(bin_dir / "devpi"), "--clientdir", str(clientdir)]
    _run([*client, "use", system.base + "/"], "devpi use")
    _run([*client, "login", "root", "--password", ""], "devpi login")
    _run([*client, "index", "-c", "root/pypi", "type=mirror", f"mirror_url={upstream.base}/simple/"],
         "devpi index -c root/pypi")
    server.wait_ready(system.index_url)
    return system


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, check=False, capture_output=True, text=True, env=child_env(), timeout=120)
    if done.returncode != 0:
        raise BenchError(f"{what} failed ({done.returncode}): {done.stdout}{done.stderr}")
