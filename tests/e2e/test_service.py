"""The server as systemd runs it: readiness over $NOTIFY_SOCKET, a clean stop on SIGTERM that
leaves no partial download behind (issue 4), and several worker processes sharing downloads and
one cache limit (issues 5, 11 D, 12 H1)."""

from __future__ import annotations

import base64
import contextlib
import http.client
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
from tests.fakeupstream import FakeFile, FakeUpstream
from tests.waiting import until_sync

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
        until_sync(lambda: any((cache / "tmp").glob("*")), "the download started")
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

        files_route = 'pypi_proxy_requests_total{method="GET",route="/pypi/files/{project}/{filename}",status="200"}'
        for _ in range(4):  # whichever worker answers, the counters are the sum of both
            text = urllib.request.urlopen(f"{url}/-/metrics", timeout=5).read().decode()
            assert f"{files_route} 30" in text, text
            assert 'pypi_proxy_upstream_requests_total{kind="file"} 1' in text
        process.send_signal(signal.SIGTERM)
        assert sock.recv(4096).decode() == "STOPPING=1"
        assert process.wait(timeout=60) == 0
        assert list((tmp_path / "data" / "cache" / "tmp").iterdir()) == []
    finally:
        kill_all(process)
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
        kill_all(process)


# --workers 2: downloads followed across processes, and one cache limit for all (issue 12 H1, 11 D)


class Pinned:
    """Keep-alive connections to the server, each served by one worker process for its life
    (SO_REUSEPORT hands a connection to one process), grouped by worker."""

    def __init__(self, url: str, log: Path, count: int = 16) -> None:
        host, port = url.removeprefix("http://").split(":")
        ids = {}
        self.by_worker: dict[int, list[http.client.HTTPConnection]] = {}
        for _ in range(count):
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            connection.request("GET", "/-/health")
            response = connection.getresponse()
            response.read()
            ids[response.getheader("X-Request-ID")] = connection
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(map(len, self.by_worker.values())) < count:
            self.by_worker = {}
            for line in log.read_text().splitlines():
                if '"event": "request"' in line:
                    event = json.loads(line)
                    if event.get("request_id") in ids:
                        self.by_worker.setdefault(event["worker"], []).append(ids[event["request_id"]])
            time.sleep(0.05)
        assert set(self.by_worker) == {0, 1}, "16 connections, and all on one worker"

    def close(self) -> None:
        for connections in self.by_worker.values():
            for connection in connections:
                connection.close()

    def get(self, worker: int, index: int, path: str) -> tuple[int, bytes]:
        """GET on the worker's ``index``-th connection; a body cut short raises IncompleteRead."""
        connection = self.by_worker[worker][index]
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()


def workers_of(process: subprocess.Popen[bytes]) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]


def kill_all(process: subprocess.Popen[bytes]) -> None:
    """After a failure: the supervisor and its workers (killing the supervisor alone orphans them)."""
    workers = workers_of(process) if process.poll() is None else []
    process.kill()
    process.wait()
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


FLAKY = FakeFile("flaky-1.0.tar.gz", bytes(range(256)) * 8192)  # 2 MiB, as shared/repro/evilup.py


@pytest.mark.parametrize("first", ["corrupt", "truncate"])
def test_a_worker_following_another_never_sends_a_failed_download_as_complete(
        tmp_path: Path, notify_socket: tuple[str, socket.socket], first: str) -> None:
    """H1 (shared/repro/h1_workers_corrupt.py): worker 0 downloads bytes that fail the listed
    sha256 (or are cut short); worker 1 follows its part file; worker 0 retries at once, under
    the same part file name. Worker 1 sent the failed bytes as a complete 200 (3 of 3 runs), or
    spun at ~95% CPU forever. Now its response breaks off, and it goes quiet."""
    fake = FakeUpstream(flavour="json")
    fake.add_file("flaky", FLAKY)
    fake.bad.file_plan = [first, "ok"]
    fake.bad.file_chunk_size = len(FLAKY.content) // 20
    fake.bad.file_chunk_pause = 0.075  # 1.5 s a download, as the repro's
    upstream = UpstreamThread(fake)
    upstream.start()
    config = tmp_path / "config.toml"
    config.write_text(f'[upstream]\nurl = "{fake.url}"\n[logging]\nformat = "json"\n')
    url, process = serve(tmp_path, "--config", str(config), "--workers", "2", env={"NOTIFY_SOCKET": notify_socket[0]})
    path = f"/pypi/files/flaky/{FLAKY.filename}"
    try:
        assert notify_socket[1].recv(4096).decode().startswith("READY=1")  # sent once both workers listen
        pinned = Pinned(url, tmp_path / "server.log")
        for worker in (0, 1):
            assert pinned.get(worker, 0, "/pypi/simple/flaky/")[0] == 200
        outcome: dict[str, object] = {}

        def fetch(label: str, worker: int) -> None:
            try:
                outcome[label] = pinned.get(worker, 1, path)
            except http.client.IncompleteRead as exc:
                outcome[label] = exc

        downloading = threading.Thread(target=fetch, args=("A", 0))
        downloading.start()
        part = tmp_path / "data" / "cache" / "tmp"
        until_sync(lambda: any(p.stat().st_size for p in part.glob("*")), "worker 0's download started")
        following = threading.Thread(target=fetch, args=("C", 1))
        following.start()
        downloading.join(30)
        retry = pinned.get(0, 2, path)  # at once: a new part file under the same name
        following.join(30)
        assert not following.is_alive(), "the follower never ended"
        assert isinstance(outcome["A"], http.client.IncompleteRead)
        assert isinstance(outcome["C"], http.client.IncompleteRead), f"worker 1 sent {outcome['C']!r:.80}"
        assert retry == (200, FLAKY.content)
        assert pinned.get(1, 2, path) == (200, FLAKY.content)
        assert fake.requests[f"/files/{FLAKY.filename}"] == 2
        pinned.close()
        workers = workers_of(process)
        before = {pid: cpu_ticks(pid) for pid in workers}
        time.sleep(2.0)  # the interval measured: a spinning follower burns about 200 ticks in it
        spent = {pid: cpu_ticks(pid) - before[pid] for pid in workers}
        assert max(spent.values()) < 50, f"CPU ticks per worker in 2 s of quiet: {spent}"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        kill_all(process)
        upstream.stop()
        upstream.close()


def test_workers_share_one_cache_limit_and_report_the_same_figures(
        tmp_path: Path, notify_socket: tuple[str, socket.socket]) -> None:
    """Issue 11 D: with --workers, files_max_size held per process (disk use up to N times it)
    and each worker reported its own cache figures. Now the limit holds for the sum, and
    /-/health, /-/metrics and `cache stats` agree whichever worker answers."""
    dists = [Dist(f"big{number}", "1.0", description="x" * 20_000) for number in range(6)]
    fake = FakeUpstream()
    for dist in dists:
        fake.add(dist, sdist=False, metadata=False)
    wheels = [fake.file(dist.wheel_filename).content for dist in dists]
    limit = 2 * max(len(w) + len(d.metadata()) for w, d in zip(wheels, dists)) + 100
    upstream = UpstreamThread(fake)
    upstream.start()
    config = tmp_path / "config.toml"
    config.write_text(f'[upstream]\nurl = "{fake.url}"\n[cache]\nfiles_max_size = {limit}\n'
                      '[logging]\nformat = "json"\n')
    url, process = serve(tmp_path, "--config", str(config), "--workers", "2", env={"NOTIFY_SOCKET": notify_socket[0]})
    files = tmp_path / "data" / "cache" / "files"
    try:
        assert notify_socket[1].recv(4096).decode().startswith("READY=1")  # sent once both workers listen
        pinned = Pinned(url, tmp_path / "server.log")
        for number, dist in enumerate(dists):
            worker = number % 2
            assert pinned.get(worker, 0, f"/pypi/simple/big{number}/")[0] == 200
            assert pinned.get(worker, 0, f"/pypi/files/big{number}/{dist.wheel_filename}") == (200, wheels[number])
            metadata = pinned.get(worker, 0, f"/pypi/files/big{number}/{dist.wheel_filename}.metadata")
            assert metadata == (200, dist.metadata())  # extracted from the wheel, kept beside it
            size = sum(p.stat().st_size for p in files.rglob("*") if p.is_file())
            assert size <= limit, f"after big{number}: {size} bytes cached, limit {limit}"
        cached = [p.stat().st_size for p in files.rglob("*") if p.is_file()]
        assert len(cached) == 4  # two wheels, each with its extracted core metadata
        for worker in (0, 1):
            for index in range(2):
                status, body = pinned.get(worker, index, "/-/health")
                figures = json.loads(body)["cache"]
                assert (figures["files"], figures["file_bytes"]) == (len(cached), sum(cached)), f"worker {worker}"
                status, body = pinned.get(worker, index, "/-/metrics")
                text = body.decode()
                assert f"pypi_proxy_cache_files {len(cached)}" in text, f"worker {worker}"
                assert f"pypi_proxy_cache_file_bytes {sum(cached)}" in text, f"worker {worker}"
        pinned.close()
        stats = subprocess.run([tool("pypi-proxy"), "cache", "stats", "--data-dir", str(tmp_path / "data")],
                               env=clean_env(tmp_path), capture_output=True, text=True, timeout=60, check=True)
        assert f"cached files: 2 projects, {len(cached)} files" in stats.stdout
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        kill_all(process)
        upstream.stop()
        upstream.close()


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value in the Prometheus text, read with prometheus_client's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    found = [sample.value for family in text_string_to_metric_families(text) for sample in family.samples
             if sample.name == name and sample.labels == labels]
    assert len(found) == 1, (name, labels, text)
    return found[0]


def test_metrics_sum_every_workers_counters_and_a_dead_workers_are_kept(
        tmp_path: Path, notify_socket: tuple[str, socket.socket]) -> None:
    """Issue 13: --workers 2 with prometheus_client's multiprocess mode. Requests pinned to each
    worker are summed whichever answers /-/metrics; a worker killed from outside leaves its
    counters (totals never go down) but not its breaker gauge (mark_process_dead): two live
    processes, two closed breakers, not three."""
    fake = FakeUpstream()
    fake.add(Dist("demo", "1.0"))
    upstream = UpstreamThread(fake)
    upstream.start()
    url, process = serve(tmp_path, "--workers", "2", "--upstream", fake.url, env={"NOTIFY_SOCKET": notify_socket[0]})
    try:
        assert notify_socket[1].recv(4096).decode().startswith("READY=1")
        pinned = Pinned(url, tmp_path / "server.log")
        for worker, count in ((0, 3), (1, 5)):
            for _ in range(count):
                assert pinned.get(worker, 0, "/pypi/simple/demo/")[0] == 200
        route = {"method": "GET", "route": "/pypi/simple/{project}/", "status": "200"}
        for worker in (0, 1):
            text = pinned.get(worker, 1, "/-/metrics")[1].decode()
            assert metric(text, "pypi_proxy_requests_total", **route) == 8, f"worker {worker}"
            assert metric(text, "pypi_proxy_cache_total", kind="page", outcome="hit") \
                + metric(text, "pypi_proxy_cache_total", kind="page", outcome="miss") == 8
            assert metric(text, "pypi_proxy_upstream_breaker_state", state="closed") == 2
            assert metric(text, "pypi_proxy_private_projects") == 0  # shared storage: given once
        pinned.close()

        survivor, killed = workers_of(process)
        os.kill(killed, signal.SIGKILL)
        metrics_dir = tmp_path / "data" / "run" / "prometheus"
        deadline = time.monotonic() + 30
        while not [pid for pid in workers_of(process) if pid not in (survivor, killed)
                   and (metrics_dir / f"gauge_livesum_{pid}.db").exists()]:  # its breaker gauge is set
            assert time.monotonic() < deadline, "the killed worker was not replaced"
            time.sleep(0.1)

        def scrape() -> str:
            return urllib.request.urlopen(f"{url}/-/metrics", timeout=10).read().decode()

        while metric(scrape(), "pypi_proxy_upstream_breaker_state", state="closed") < 2:
            assert time.monotonic() < deadline  # the new worker's gauge is being written
            time.sleep(0.05)
        for _ in range(4):  # whichever worker answers
            text = scrape()
            assert metric(text, "pypi_proxy_requests_total", **route) == 8
            assert metric(text, "pypi_proxy_upstream_breaker_state", state="closed") == 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        kill_all(process)
        upstream.stop()
        upstream.close()


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
        kill_all(process)
        upstream.stop()
        upstream.close()
