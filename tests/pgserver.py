"""A throwaway PostgreSQL cluster for the tests: Debian's ``postgresql`` package's ``initdb`` and
``pg_ctl``, started once per test session on a free loopback port with its socket in its own
temp directory, and a fresh empty database per test (``pg_url``).

``initdb`` refuses to run as root: as root, the cluster's directory belongs to the ``postgres``
user and its commands run through ``runuser``. Missing PostgreSQL skips the tests that need it,
naming the package (tests/tools.py: with ``CI`` set it fails them instead). The cluster is
stopped at the end of the session, also when tests fail.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.tools import require_tool

HOW_TO_INSTALL = "apt-get install postgresql; the tests start their own throwaway server with its initdb and pg_ctl"
SUPERUSER = "postgres"
_names = itertools.count(1)


def find_bindir() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``: on PATH, else Debian's newest
    /usr/lib/postgresql/<major>/bin."""
    for tool in ("pg_ctl", "initdb"):
        found = shutil.which(tool)
        if found and (Path(found).resolve().parent / "initdb").exists():
            return Path(found).resolve().parent
    majors = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(majors[-1]).parent if majors else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PgCluster:
    """One PostgreSQL cluster in a temp directory, listening on 127.0.0.1 only."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="pypi-proxy-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.owner = _service_user()
        if self.owner is not None:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.owner is not None:
            command = ["runuser", "-u", self.owner.pw_name, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root, check=False)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip()}\n{tail}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")

    def start(self) -> None:
        # fsync off: a crash of the test machine may lose the throwaway data, which is fine.
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                  "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> None:
        """Stop and start again on the same port: every open connection is broken."""
        self.stop()
        self.start()

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True)

    def create_database(self) -> str:
        """A new empty database; its name."""
        name = f"test_{os.getpid()}_{next(_names)}"
        with self.admin() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _service_user() -> pwd.struct_passwd | None:
    """Who runs the server: ``postgres`` when we are root (initdb refuses root), else us."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SUPERUSER)
    except KeyError:
        pytest.fail("running as root, but there is no 'postgres' user to run PostgreSQL as "
                    f"({HOW_TO_INSTALL})", pytrace=False)


def start_cluster() -> PgCluster:
    """A started cluster, or a skip (a failure with CI set) naming the package to install."""
    bindir = find_bindir()
    if bindir is None:
        require_tool("postgresql", HOW_TO_INSTALL)
        raise AssertionError("unreachable: require_tool skips or fails")
    cluster = PgCluster(bindir)
    try:
        cluster.init()
        cluster.start()
    except BaseException:
        cluster.remove()
        raise
    return cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The session's PostgreSQL cluster, stopped and removed when the session ends."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        try:
            cluster.stop("immediate")
        finally:
            cluster.remove()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """The URL of a fresh, empty database (``postgresql://`` as a user writes it), dropped after
    the test with whatever connections are still open to it."""
    name = pg_cluster.create_database()
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)
