"""A real nginx in front of the proxy (front-server mode), configured with what
``pypi-proxy front-config nginx`` prints, run unprivileged with every path of its own in a
temporary directory and on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from proxy.config import Settings
from proxy.ops.frontconfig import nginx as nginx_config
from tests.fakeupstream import free_port
from tests.tools import require_tool
from tests.waiting import until, until_sync

HOW_TO_INSTALL = "apt-get install nginx"


def nginx_binary() -> str:
    """nginx on PATH, or Debian's /usr/sbin/nginx (not on a user's PATH); else skip (fail in CI)."""
    if shutil.which("nginx") is None and os.access("/usr/sbin/nginx", os.X_OK):
        return "/usr/sbin/nginx"
    return require_tool("nginx", HOW_TO_INSTALL)


def front_settings(settings: Settings, proxy_port: int) -> Settings:
    """``settings`` with front_server = "nginx", naming the port the proxy really listens on."""
    return replace(settings, server=replace(settings.server, front_server="nginx", port=proxy_port,
                                            host="127.0.0.1"))


@dataclass(frozen=True)
class Logged:
    """One request as nginx logged it: ``uri`` is where it ended (an internal location when the
    proxy handed the file over), ``request_uri`` what the client asked for."""

    request_uri: str
    uri: str
    status: int
    sent: int


class Nginx:
    """nginx in front of a proxy on ``proxy_port`` whose settings are ``settings`` (or with the
    ``site`` text `pypi-proxy front-config nginx` printed, listening on ``port``): ``url`` is where
    clients reach it. Start with ``start`` (async tests) or ``start_sync``; ``stop`` ends it."""

    def __init__(self, prefix: Path, settings: Settings | None = None, proxy_port: int = 0, *,
                 site: str | None = None, port: int | None = None) -> None:
        self.binary = nginx_binary()
        self.prefix = prefix
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        prefix.mkdir(parents=True, exist_ok=True)
        if site is None:
            assert settings is not None
            site = nginx_config(front_settings(settings, proxy_port), listen=f"127.0.0.1:{self.port}")
        (prefix / "pypi-proxy.conf").write_text(site)
        temp = "".join(f"    {kind}_temp_path {prefix}/{kind};\n"
                       for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root root;\n" if os.geteuid() == 0 else ""  # workers must read the data dir
        (prefix / "nginx.conf").write_text(f"""{user}daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 512; }}
http {{
    log_format front '$request_uri $uri $status $body_bytes_sent';
    access_log {prefix}/access.log front;
{temp}    default_type application/octet-stream;
    include {prefix}/pypi-proxy.conf;
}}
""")

    def logged(self) -> list[Logged]:
        """Every request nginx finished, in order."""
        path = self.prefix / "access.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [Logged(parts[0], parts[1], int(parts[2]), int(parts[3])) for parts in map(str.split, lines)]

    @property
    def error_log(self) -> str:
        return (self.prefix / "error.log").read_text() if (self.prefix / "error.log").exists() else ""

    def _launch(self) -> None:
        argv = [self.binary, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"),
                "-e", str(self.prefix / "error.log")]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            stderr = self.process.stderr.read().decode() if self.process.stderr else ""
            raise AssertionError(f"nginx exited with {self.process.returncode}: {stderr}{self.error_log}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    async def start(self) -> None:
        self._launch()
        await until(self._listening, "nginx listening", within=10.0)

    def start_sync(self) -> None:
        self._launch()
        until_sync(self._listening, "nginx listening")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
