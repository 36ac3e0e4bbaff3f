"""Several replicas, real processes, real clients (issue 14): two `pypi-proxy serve` processes, each
with its own data dir and port, on one PostgreSQL database (tests/pgserver.py) and one SeaweedFS
bucket (tests/s3server.py). twine uploads through one, pip and uv install through the other; a token
revoked with the CLI is refused by both; files by presigned redirect; the object store stopped
and the database restarted under running replicas."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from proxy.objectsettings import ObjectStoreSettings, flatten
from tests.builders import Dist
from tests.e2e.conftest import PASSWORD, Server, clean_env, installed_version, start_proxy, stop_proxy, tool
from tests.pgserver import PgCluster
from tests.s3server import SeaweedFS
from tests.waiting import until_sync

pytestmark = pytest.mark.e2e
JSON_PAGE = {"Accept": "application/vnd.pypi.simple.v1+json"}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string is a JSON string


def write_config(path: Path, database: str, objects: ObjectStoreSettings, **storage: Any) -> Path:
    """A config file of the shared mode (no data_dir: each replica gets its own with --data-dir)."""
    values = {"database": database, **flatten(objects), **storage}
    path.write_text("[storage]\n" + "".join(f"{key} = {toml_value(value)}\n" for key, value in values.items())
                    + "[upstream]\nenabled = false\n")
    return path


def cli(home: Path, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([tool("pypi-proxy"), *args], env=clean_env(home), input=stdin, capture_output=True,
                          text=True, timeout=120)
    if check and done.returncode != 0:
        pytest.fail(f"pypi-proxy {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read()


def listed(server: Server, project: str) -> list[str]:
    status, body = get(f"{server.simple}{project}/", JSON_PAGE)
    return [f["filename"] for f in json.loads(body)["files"]] if status == 200 else []


def twine_upload(server: Server, token: str, *files: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return server.run([tool("twine"), "upload", "--repository-url", server.upload_url, "-u", "__token__", "-p", token,
                       *map(str, files)], check=check)


@dataclass
class Cluster:
    """Two replicas on one database and bucket, their shared config, and alice's token."""

    root: Path
    config: Path
    database: str
    objects: ObjectStoreSettings
    a: Server
    b: Server
    token: str

    def replica(self, name: str, config: Path | None = None) -> Server:
        home = self.root / name
        home.mkdir()
        return start_proxy(home, "--config", str(config or self.config))


@pytest.fixture(scope="module")
def cluster(pg_cluster: PgCluster, seaweedfs: SeaweedFS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replicas")
    database = pg_cluster.url(pg_cluster.create_database())
    objects = seaweedfs.settings(seaweedfs.create_bucket(), "prod")
    config = write_config(root / "shared.toml", database, objects)
    admin = root / "admin"
    admin.mkdir()
    assert "upgraded from an empty database" in cli(admin, "db", "upgrade", "--config", str(config)).stdout
    cli(admin, "user", "add", "alice", "--password-stdin", "--config", str(config), stdin=PASSWORD + "\n")
    token = cli(admin, "token", "create", "alice", "--config", str(config)).stdout.strip()
    servers: list[Server] = []
    try:
        for name in ("a", "b"):
            home = root / name
            home.mkdir()
            servers.append(start_proxy(home, "--config", str(config)))
        yield Cluster(root, config, database, objects, servers[0], servers[1], token)
    finally:
        for server in servers:
            stop_proxy(server.process)


@pytest.fixture(scope="module")
def published(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """shared-pkg 1.0: wheel and sdist uploaded through A with the real twine."""
    dist = Dist("shared-pkg", "1.0", requires_python=">=3.8")
    twine_upload(cluster.a, cluster.token, *dist.write(tmp_path_factory.mktemp("dist")))
    return dist


def test_a_replica_refuses_a_database_without_the_schema_naming_the_command(
        pg_cluster: PgCluster, s3_settings: ObjectStoreSettings, tmp_path: Path) -> None:
    config = write_config(tmp_path / "new.toml", pg_cluster.url(pg_cluster.create_database()), s3_settings)
    refused = cli(tmp_path, "serve", "--port", "0", "--data-dir", str(tmp_path / "data"), "--config", str(config),
                  check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.strip().endswith("run `pypi-proxy db upgrade`")


def test_upload_through_a_installs_through_b_with_pip_and_uv(cluster: Cluster, published: Dist, tmp_path: Path) -> None:
    wanted = sorted([published.wheel_filename, published.sdist_filename])
    # Twine has returned: B shows the files after a bounded wait for its change feed (no timing asserted).
    until_sync(lambda: sorted(listed(cluster.b, "shared-pkg")) == wanted, "B lists what A stored", within=10)
    b = cluster.b
    b.run([tool("python"), "-m", "pip", "install", "--target", str(tmp_path / "pip"), "--index-url", b.simple,
           "shared-pkg==1.0"])
    assert installed_version(tmp_path / "pip", "shared_pkg") == "1.0"
    b.run([tool("uv"), "pip", "install", "--target", str(tmp_path / "uv"), "--index-url", b.simple, "shared-pkg"])
    assert installed_version(tmp_path / "uv", "shared_pkg") == "1.0"


def test_a_token_revoked_with_the_cli_is_refused_by_b(cluster: Cluster, published: Dist, tmp_path: Path) -> None:
    created = cli(cluster.root, "token", "create", "alice", "--config", str(cluster.config))
    token = created.stdout.strip()
    token_id = re.search(r"token (\S+) created", created.stderr)
    assert token_id is not None, created.stderr
    wheel, sdist = Dist("revoked-pkg", "1.0").write(tmp_path)
    twine_upload(cluster.b, token, wheel)
    cli(cluster.root, "token", "revoke", token_id.group(1), "--config", str(cluster.config))
    refused = twine_upload(cluster.b, token, sdist, check=False)
    assert refused.returncode != 0
    assert re.search(r"40[13]", refused.stdout + refused.stderr), refused.stdout + refused.stderr


def test_pip_follows_the_presigned_redirect_and_installs(cluster: Cluster, published: Dist, tmp_path: Path) -> None:
    config = write_config(cluster.root / "redirect.toml", cluster.database, cluster.objects, objects_serve="redirect")
    c = cluster.replica("c", config)
    try:
        request = urllib.request.Request(f"{c.url}/pypi/files/shared-pkg/{published.wheel_filename}")
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as answer:
            opener.open(request, timeout=30)
        with answer.value:
            assert answer.value.code == 302 and "X-Amz-Signature=" in answer.value.headers["Location"]
        c.run([tool("python"), "-m", "pip", "install", "--target", str(tmp_path), "--index-url", c.simple,
               "shared-pkg==1.0"])
        assert installed_version(tmp_path, "shared_pkg") == "1.0"
    finally:
        stop_proxy(c.process)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def test_object_store_down_is_a_503_naming_it_and_nothing_is_corrupted(
        cluster: Cluster, published: Dist, seaweedfs_outage: SeaweedFS) -> None:
    """A replica that has sent a file keeps a local copy (stream mode) and sends it while the
    store is down; one without a copy (A only took the upload) answers 503 naming the store."""
    path = f"/pypi/files/shared-pkg/{published.wheel_filename}"
    digest = hashlib.sha256(published.wheel()).hexdigest()
    until_sync(lambda: published.wheel_filename in listed(cluster.b, "shared-pkg"), "B lists the wheel", within=10)
    status, body = get(cluster.b.url + path)
    assert status == 200 and hashlib.sha256(body).hexdigest() == digest
    copy = cluster.b.home / "data" / "cache" / "blobs" / digest[:2] / digest
    until_sync(copy.is_file, "B keeps a copy of the wheel it sent")
    with seaweedfs_outage.stopped():
        status, body = get(cluster.a.url + path)
        assert status == 503 and b"object store s3://" in body, body
        assert published.wheel_filename in listed(cluster.a, "shared-pkg"), "the loaded page still answers"
        status, body = get(cluster.b.url + path)
        assert status == 200 and hashlib.sha256(body).hexdigest() == digest, "B sends its local copy"
    status, body = get(cluster.a.url + path)
    assert status == 200 and hashlib.sha256(body).hexdigest() == digest
    checked = cli(cluster.root, "check", "--config", str(cluster.config), "--deep", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_replicas_answer_again_after_a_database_restart(
        cluster: Cluster, published: Dist, pg_cluster: PgCluster, tmp_path: Path) -> None:
    pg_cluster.restart()  # every pooled and listening connection is broken
    dist = Dist("after-restart", "1.0")
    (wheel,) = dist.write(tmp_path, sdist=False)
    twine_upload(cluster.a, cluster.token, wheel)
    until_sync(lambda: listed(cluster.b, "after-restart") == [wheel.name], "B lists an upload made after the restart",
               within=15)


def test_migrate_an_embedded_install_then_install_through_a_replica(cluster: Cluster, tmp_path: Path) -> None:
    """Projects uploaded to a single-node install with twine, copied with `migrate --to` (twice:
    the second run copies nothing), then installed through a replica with its old token."""
    home = tmp_path / "single"
    home.mkdir()
    data = ["--data-dir", str(home / "data")]
    cli(home, "user", "add", "carol", "--password-stdin", *data, stdin=PASSWORD + "\n")
    token = cli(home, "token", "create", "carol", *data).stdout.strip()
    single = start_proxy(home, "--no-upstream")
    try:
        for dist in (Dist("moved-one", "1.0"), Dist("moved-two", "2.0", requires_dist=["moved-one"])):
            twine_upload(single, token, *dist.write(tmp_path / "dist"))
    finally:
        stop_proxy(single.process)
    first = cli(home, "migrate", "--to", str(cluster.config), *data)
    assert "files: 4 copied, 0 already there, 0 not copied" in first.stdout, first.stdout
    second = cli(home, "migrate", "--to", str(cluster.config), *data)
    assert "files: 0 copied, 4 already there, 0 not copied" in second.stdout, second.stdout
    assert "users: 0 copied, 1 already there" in second.stdout and "tokens: 0 copied, 1 already there" in second.stdout
    b = cluster.b
    until_sync(lambda: len(listed(b, "moved-two")) == 2, "B lists the migrated project", within=10)
    b.run([tool("python"), "-m", "pip", "install", "--target", str(tmp_path / "t"), "--index-url", b.simple,
           "moved-two==2.0"])
    assert installed_version(tmp_path / "t", "moved_two") == "2.0"
    assert installed_version(tmp_path / "t", "moved_one") == "1.0"
    twine_upload(cluster.a, token, *Dist("moved-one", "1.1").write(tmp_path / "more", sdist=False))
