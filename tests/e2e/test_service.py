"""The server as systemd runs it: readiness over $NOTIFY_SOCKET, and a clean stop on SIGTERM that
leaves no partial download behind (issue 4)."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import Dist
from tests.e2e.conftest import UpstreamThread, clean_env, free_port, tool, wait_until_serving
from tests.fakeupstream import FakeUpstream

pytestmark = pytest.mark.e2e
BIG = Dist("big", "1.0", description="x" * (1024 * 1024))  # about 1 MiB of wheel, sent slowly


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    yield path, sock
    sock.close()


def serve(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    with open(home / "server.log", "ab") as log:
        process = subprocess.Popen(
            [tool("pypi-proxy"), "serve", "--port", str(port), "--data-dir", str(home / "data"), *args],
            env={**clean_env(home), **(env or {})}, stdout=log, stderr=log,
        )
    return f"http://127.0.0.1:{port}", process


def test_sd_notify_ready_and_stopping(tmp_path: Path, notify_socket: tuple[str, socket.socket]) -> None:
    path, sock = notify_socket
    url, process = serve(tmp_path, "--no-upstream", env={"NOTIFY_SOCKET": path})
    try:
        ready = sock.recv(4096).decode()
        assert ready.startswith("READY=1\n")
        with urllib.request.urlopen(f"{url}/-/health", timeout=5) as response:  # listening when READY=1
            assert response.status == 200
        process.send_signal(signal.SIGTERM)
        assert sock.recv(4096).decode() == "STOPPING=1"
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()


def test_sigterm_during_a_download_leaves_no_partial_file(tmp_path: Path) -> None:
    fake = FakeUpstream()
    fake.add(BIG, sdist=False, metadata=False)
    fake.bad.file_chunk_pause = 0.3  # 16 chunks of 64 KiB: about 5 s, well past the grace period
    upstream = UpstreamThread(fake)
    upstream.start()
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nshutdown_timeout = 1\n[upstream]\nurl = "{fake.url}"\n')
    url, process = serve(tmp_path, "--config", str(config))
    cache = tmp_path / "data" / "cache"
    try:
        wait_until_serving(f"{url}/pypi/simple/", process)
        urllib.request.urlopen(f"{url}/pypi/simple/big/", timeout=5).read()
        outcome: list[object] = []

        def download() -> None:
            try:
                with urllib.request.urlopen(f"{url}/pypi/files/big/{BIG.wheel_filename}", timeout=30) as r:
                    outcome.append(len(r.read()))
            except Exception as exc:  # the connection is cut: that is the point
                outcome.append(exc)

        client = threading.Thread(target=download)
        client.start()
        deadline = time.monotonic() + 10
        while not any((cache / "tmp").glob("*")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert any((cache / "tmp").glob("*")), "the download did not start"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        client.join(timeout=10)
        assert outcome and outcome[0] != len(BIG.wheel()), "the client must not get a complete-looking file"
        assert list((cache / "tmp").iterdir()) == []
        assert not (cache / "files" / "big" / BIG.wheel_filename).exists()
        assert "stopped" in (tmp_path / "server.log").read_text()
    finally:
        process.kill()
        process.wait()
        upstream.stop()
        upstream.close()


def test_workers_share_the_port_and_download_a_cold_file_once(
        tmp_path: Path, notify_socket: tuple[str, socket.socket]) -> None:
    """--workers 2: both processes answer, and 30 parallel clients of one cold file, spread over
    both, cause one upstream request and all get the complete, verified bytes (issue 5)."""
    import concurrent.futures
    import hashlib

    path, sock = notify_socket
    fake = FakeUpstream()
    fake.add(BIG, sdist=False, metadata=False)
    fake.bad.file_chunk_pause = 0.05  # slow enough that every client arrives mid-download
    upstream = UpstreamThread(fake)
    upstream.start()
    url, process = serve(tmp_path, "--workers", "2", "--upstream", fake.url, env={"NOTIFY_SOCKET": path})
    try:
        assert sock.recv(4096).decode().startswith("READY=1")  # sent once both workers listen
        urllib.request.urlopen(f"{url}/pypi/simple/big/", timeout=5).read()
        expected = hashlib.sha256(BIG.wheel()).hexdigest()

        def fetch(_: int) -> str:
            with urllib.request.urlopen(f"{url}/pypi/files/big/{BIG.wheel_filename}", timeout=60) as response:
                return hashlib.sha256(response.read()).hexdigest()

        with concurrent.futures.ThreadPoolExecutor(30) as pool:
            digests = list(pool.map(fetch, range(30)))
        assert digests == [expected] * 30
        assert fake.requests[f"/files/{BIG.wheel_filename}"] == 1
        def logged() -> list[dict[str, object]]:  # a request is logged once its handler returns
            return [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines()
                    if '"event": "request"' in line and "/pypi/files/" in line]

        deadline = time.monotonic() + 10
        while len(downloads := logged()) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(downloads) == 30
        assert {d["worker"] for d in downloads} == {0, 1}, "both workers served the cold file"

        time.sleep(1.5)  # each worker snapshots its counters every second
        files_route = 'pypi_proxy_requests_total{route="/pypi/files/{project}/{filename}",method="GET",status="200"}'
        for _ in range(4):  # whichever worker answers, the counters are the sum of both
            text = urllib.request.urlopen(f"{url}/-/metrics", timeout=5).read().decode()
            assert f"{files_route} 30" in text, text
            assert 'pypi_proxy_upstream_requests_total{kind="file"} 1' in text
        process.send_signal(signal.SIGTERM)
        assert sock.recv(4096).decode() == "STOPPING=1"
        assert process.wait(timeout=60) == 0
        assert list((tmp_path / "data" / "cache" / "tmp").iterdir()) == []
    finally:
        process.kill()
        process.wait()
        upstream.stop()
        upstream.close()


def test_the_supervisor_restarts_a_worker_that_dies(tmp_path: Path, notify_socket: tuple[str, socket.socket]) -> None:
    """--workers: a worker killed from outside is replaced; the service keeps answering."""
    path, sock = notify_socket
    url, process = serve(tmp_path, "--workers", "2", "--no-upstream", env={"NOTIFY_SOCKET": path})
    try:
        assert sock.recv(4096).decode().startswith("READY=1")
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) == 2, "the supervisor (same PID as the command) runs two workers"
        os.kill(int(children[0]), signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
            if len(now) == 2 and children[0] not in now:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the dead worker was not replaced")
        for _ in range(10):  # whichever worker answers
            with urllib.request.urlopen(f"{url}/-/health", timeout=10) as response:
                assert response.status == 200
        assert "worker_died" in (tmp_path / "server.log").read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
        process.wait()


def test_secrets_stay_out_of_every_process_environment_and_command_line(
        tmp_path: Path, notify_socket: tuple[str, socket.socket]) -> None:
    """Issue 12 L7: with --workers 2, the settings reach the supervisor and each worker through
    a descriptor read once, not the environment: the upstream password is in no
    /proc/<pid>/environ or cmdline, no process keeps the descriptor open, and the workers
    still have it (they send it upstream)."""
    password = "upstream-secret-6d1f0c"
    path, sock = notify_socket
    fake = FakeUpstream()
    fake.add(Dist("demo", "1.0"))
    upstream = UpstreamThread(fake)
    upstream.start()
    config = tmp_path / "config.toml"
    config.write_text(f'[upstream]\nurl = "{fake.url}"\nusername = "proxy"\npassword = "{password}"\n')
    url, process = serve(tmp_path, "--workers", "2", "--config", str(config), env={"NOTIFY_SOCKET": path})
    try:
        assert sock.recv(4096).decode().startswith("READY=1")
        workers = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(workers) == 2
        for pid in [str(process.pid), *workers]:
            for name in ("environ", "cmdline"):
                assert password.encode() not in Path(f"/proc/{pid}/{name}").read_bytes(), (pid, name)
            held = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
            assert not [target for target in held if "pypi-proxy-settings" in target], (pid, held)
        for _ in range(4):  # whichever worker answers
            with urllib.request.urlopen(f"{url}/pypi/simple/demo/", timeout=10) as response:
                assert response.status == 200
        sent = {headers.get("Authorization") for headers in fake.seen_headers}
        assert sent == {"Basic " + base64.b64encode(f"proxy:{password}".encode()).decode()}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
        process.wait()
        upstream.stop()
        upstream.close()
