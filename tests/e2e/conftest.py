"""A real ``pypi-proxy serve`` process on loopback, and helpers to drive real clients against it."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.clitools import on_terminal
from tests.fakeupstream import FakeUpstream, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PASSWORD = "e2e password 123"
README_URL = "http://127.0.0.1:8080"


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: install the test extras with pip install '.[test]'")
    return found


def installed_version(target: Path, module: str) -> str:
    """VALUE of a test package's module installed into ``target`` (pip/uv --target)."""
    namespace: dict[str, str] = {}
    exec((target / module / "__init__.py").read_text(), namespace)
    return namespace["VALUE"]


def clean_env(home: Path) -> dict[str, str]:
    """No user or machine configuration of pip, uv or twine leaks into a test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "TWINE_", "PYPI_PROXY_"))}
    env.update({
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_CACHE_DIR": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "UV_NO_CACHE": "1",
        "UV_PYTHON": sys.executable,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        "VIRTUALENV_NO_PERIODIC_UPDATE": "1",
        # Any attempt to reach beyond loopback fails at once: tests never touch the internet.
        **{name: "http://127.0.0.1:9" for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                                                    "http_proxy", "https_proxy", "all_proxy")},
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    })
    env.pop("STATE_DIRECTORY", None)
    return env


@dataclass
class Server:
    url: str
    home: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    token: str = ""

    @property
    def simple(self) -> str:
        return f"{self.url}/pypi/simple/"

    @property
    def upload_url(self) -> str:
        return f"{self.url}/pypi"

    def run(self, args: Sequence[str], check: bool = True, cwd: Path | None = None,
            env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(args), cwd=cwd, env={**self.env, **(env or {})}, input=stdin,
            capture_output=True, text=True, timeout=180,
        )
        if check and result.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def shell(self, script: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True,
              stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a README snippet as written, pointed at this server instead of port 8080."""
        return self.run(["bash", "-euo", "pipefail", "-c", script.replace(README_URL, self.url)],
                        cwd=cwd, env=env, check=check, stdin=stdin)


def wait_until_serving(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start in time")


def answer_prompts(args: Sequence[str], answers: Sequence[str], env: dict[str, str]) -> str:
    """Run a command on a pseudo-terminal, typing each answer after its prompt (getpass needs a tty)."""
    done = on_terminal(args, env, *((":", f"{answer}\n".encode()) for answer in answers))
    assert done.status == 0, done.output
    return done.output


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`pypi-proxy serve` as the Quick start runs it: no config file, embedded defaults but the port."""
    home = tmp_path_factory.mktemp("home")
    env = clean_env(home)
    port = free_port()
    log = open(home / "server.log", "wb")
    process = subprocess.Popen([tool("pypi-proxy"), "serve", "--port", str(port)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/pypi/simple/", process)
        instance = Server(url, home, env, process)
        instance.run([tool("pypi-proxy"), "user", "add", "alice", "--password-stdin"], stdin=PASSWORD + "\n")
        created = instance.run([tool("pypi-proxy"), "token", "create", "alice"])
        instance.token = created.stdout.strip()
        assert re.fullmatch(r"pypi-proxy-[0-9a-f]{12}-\S+", instance.token)
        yield instance
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def readme_snippet(name: str) -> str:
    """The fenced block under ``<!-- test: NAME -->`` in README.md."""
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- test: {re.escape(name)} -->\n```[a-z]*\n(.*?)```", text, re.S)
    assert match, f"README.md has no snippet {name!r}"
    return match.group(1)


class UpstreamThread:
    """A FakeUpstream served from its own event loop in a background thread, for synchronous tests."""

    def __init__(self, upstream: FakeUpstream) -> None:
        self.upstream = upstream
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-upstream", daemon=True)
        self._thread.start()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def start(self) -> None:
        self._call(self.upstream.start())

    def stop(self) -> None:
        self._call(self.upstream.stop())

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def start_proxy(home: Path, *args: str, port: int | None = None) -> Server:
    """`pypi-proxy serve` with its data and log under ``home``, on ``port`` (default: a free one)."""
    env = clean_env(home)
    port = port or free_port()
    with open(home / "server.log", "ab") as log:
        process = subprocess.Popen([tool("pypi-proxy"), "serve", "--port", str(port), "--data-dir",
                                    str(home / "data"), *args], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(f"{url}/pypi/simple/", process)
    return Server(url, home, env, process)


def stop_proxy(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)
