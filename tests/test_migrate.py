"""`pypi-proxy migrate --to` and `pypi-proxy check` of a shared backend (issue 14), on SQLite and a
file:// object store (the same code as PostgreSQL and S3; tests/e2e/test_replicas.py runs those):
everything is copied and verified, a second run copies nothing, different data is never
overwritten, a run stopped by a bad file resumes, and check finds missing, damaged and unlisted blobs."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.config import load_settings
from proxy.storage.auth import AuthStore
from proxy.storage.backends import Stores, open_stores
from proxy.storage.objects import blob_key
from proxy.storage.private import PrivateStorage
from proxy.storage.sql.migrate import upgrade
from tests.conftest import PASSWORD
from tests.storebackends import WHEEL, commit

SDIST = "demo-1.0.tar.gz"
OTHER = "other-2.0-py3-none-any.whl"


@pytest.fixture
def embedded(tmp_path: Path) -> Path:
    """A data directory with two projects (one file yanked), a user with a token."""
    data_dir = tmp_path / "embedded"
    private = PrivateStorage(data_dir)
    private.prepare()
    commit(private, WHEEL, b"demo wheel")
    commit(private, SDIST, b"demo sdist")
    commit(private, OTHER, b"other wheel", version="2.0", project="other", display_name="Other")
    private.update("demo", lambda p: p.with_yank({SDIST}, "broken"))
    auth = AuthStore(data_dir)
    auth.add_user("alice", PASSWORD, ["demo"])
    _token_id, token = auth.create_token("alice", description="ci")
    (tmp_path / "token").write_text(token)
    return data_dir


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A shared-mode config (SQLite, a file:// object store), upgraded."""
    config = tmp_path / "shared.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "replica"}"\ndatabase = "sqlite:///{tmp_path / "m.db"}"\n'
                      f'objects = "file://{tmp_path / "objects"}"\n')
    with opened_target(config) as stores:
        assert stores.shared is not None
        upgrade(stores.shared.engine)
    return config


class opened_target:
    def __init__(self, config: Path) -> None:
        self.stores = open_stores(load_settings(config))

    def __enter__(self) -> Stores:
        return self.stores

    def __exit__(self, *_: object) -> None:
        self.stores.close()


def migrate(embedded: Path, target: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = main(["migrate", "--data-dir", str(embedded), "--to", str(target)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out + err


def blob_path(tmp_path: Path, data: bytes) -> Path:
    return tmp_path / "objects" / blob_key(hashlib.sha256(data).hexdigest())


def test_migrate_copies_projects_users_and_tokens_as_stored_and_is_idempotent(
        embedded: Path, target: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = migrate(embedded, target, capsys)
    assert status == 0, out
    assert out.splitlines()[-4:] == ["projects: 2", "files: 3 copied, 0 already there, 0 not copied",
                                     "users: 1 copied, 0 already there, 0 not copied",
                                     "tokens: 1 copied, 0 already there, 0 not copied"]
    source = PrivateStorage(embedded)
    with opened_target(target) as stores:
        for name in ("demo", "other"):
            assert stores.private.load(name) == replace(source.load(name), serial=stores.private.load(name).serial)
        assert stores.private.project_names() == ["Demo", "Other"]
        identity = stores.auth.authenticate("alice", PASSWORD)
        assert identity.user_projects == ("demo",), "the password hash and scope as stored"
        assert [t["description"] for t in stores.auth.tokens()] == ["ci"]
        token = (embedded.parent / "token").read_text()
        assert stores.auth.authenticate("__token__", token).user == "alice", "the token's hash as stored"
    assert blob_path(target.parent, b"demo wheel").read_bytes() == b"demo wheel"
    again, out = migrate(embedded, target, capsys)
    assert again == 0 and "files: 0 copied, 3 already there, 0 not copied" in out
    assert "users: 0 copied, 1 already there" in out and "tokens: 0 copied, 1 already there" in out


def test_different_data_in_the_target_is_reported_and_never_overwritten(
        embedded: Path, target: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert migrate(embedded, target, capsys)[0] == 0
    with opened_target(target) as stores:
        stores.private.update("demo", lambda p: p.with_yank({SDIST}, None))
        stores.auth.remove_user("alice")
        stores.auth.add_user("alice", "another password")
        before = stores.private.load("demo")
    status, out = migrate(embedded, target, capsys)
    assert status == 1
    assert f"NOT COPIED file demo/{SDIST}: yanked here as 'broken', in the target as None" in out
    assert "NOT COPIED user 'alice': the target's has another password or project scope" in out
    with opened_target(target) as stores:
        assert stores.private.load("demo") == before
        assert stores.auth.authenticate("alice", "another password").user == "alice"


def test_a_file_that_fails_its_check_is_not_copied_and_a_later_run_resumes(
        embedded: Path, target: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wheel = PrivateStorage(embedded).file_path("demo", WHEEL)
    wheel.write_bytes(b"DEMO WHEEL")  # same size, other bytes: damaged since it was indexed
    status, out = migrate(embedded, target, capsys)
    assert status == 1 and f"NOT COPIED file demo/{WHEEL}: refused to store" in out
    assert "files: 2 copied, 0 already there, 1 not copied" in out
    with opened_target(target) as stores:
        assert [f.filename for f in stores.private.load("demo").files] == [SDIST]
    assert not blob_path(tmp_path, b"DEMO WHEEL").exists(), "no blob of bytes that failed their check"
    wheel.write_bytes(b"demo wheel")  # restored from a backup
    status, out = migrate(embedded, target, capsys)
    assert status == 0 and "files: 1 copied, 2 already there, 0 not copied" in out


def test_migrate_refuses_a_target_that_is_not_ready(
        embedded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain.toml"
    plain.write_text("[storage]\n")
    status, out = migrate(embedded, plain, capsys)
    assert status == 2 and "--to: " in out and "names no shared backend" in out
    fresh = tmp_path / "fresh.toml"
    fresh.write_text(f'[storage]\ndatabase = "sqlite:///{tmp_path / "new.db"}"\nobjects = "file://{tmp_path / "o"}"\n')
    status, out = migrate(embedded, fresh, capsys)
    assert status == 1 and out.strip().endswith("run `pypi-proxy db upgrade`")


def test_check_of_the_shared_backend_finds_missing_damaged_and_unlisted_blobs(
        embedded: Path, target: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert migrate(embedded, target, capsys)[0] == 0

    def check(*args: str) -> tuple[int, str]:
        status = main(["check", "--config", str(target), *args])
        out, err = capsys.readouterr()
        return status, out + err

    status, out = check("--deep")
    assert status == 0 and out.strip().endswith("checked 6 listed blobs in file://"
                                                f"{tmp_path / 'objects'} (sha256 re-read): 0 problems, "
                                                "0 unlisted blobs (garbage)"), out
    blob_path(tmp_path, b"other wheel").unlink()
    blob_path(tmp_path, b"demo wheel").write_bytes(b"DEMO WHEEL")
    garbage = blob_path(tmp_path, b"left by a crash")
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(b"left by a crash")
    status, out = check()
    assert status == 1 and f"PROBLEM other/{OTHER}" in out and "missing from the object store" in out
    assert "demo/" not in out, "same size: only --deep reads the bytes"
    assert f"garbage {blob_key(hashlib.sha256(b'left by a crash').hexdigest())}: 15 bytes" in out
    status, out = check("--deep")
    assert status == 1 and f"PROBLEM demo/{WHEEL}" in out and "sha256 does not match" in out
