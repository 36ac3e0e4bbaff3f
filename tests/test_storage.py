"""Private storage on disk: atomic commits, duplicates, concurrency across threads, crash leftovers."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from proxy.atomic import TEMP_PREFIX, sweep_temp_files, write_atomic
from proxy.errors import FileExists, ProjectNotFound
from proxy.models import ReleaseInfo, StoredFile, utc_now
from proxy.storage import PrivateStorage


@pytest.fixture
def storage(tmp_path: Path) -> PrivateStorage:
    store = PrivateStorage(tmp_path)
    store.prepare()
    return store


def stage(storage: PrivateStorage, data: bytes) -> Path:
    path = storage.new_temp_path()
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def record(filename: str, data: bytes, version: str = "1.0") -> StoredFile:
    return StoredFile(filename, version, "bdist_wheel", "py3", len(data), hashlib.sha256(data).hexdigest(),
                      hashlib.md5(data).hexdigest(), "00", utc_now(), "alice")


def commit(storage: PrivateStorage, filename: str, data: bytes, version: str = "1.0") -> bool:
    return storage.commit_file(stage(storage, data), record(filename, data, version), b"Name: demo\n",
                               ReleaseInfo(version), "Demo", "demo")


def tree(storage: PrivateStorage) -> dict[str, bytes]:
    return {str(p.relative_to(storage.root)): p.read_bytes() for p in storage.root.rglob("*") if p.is_file()}


def test_commit_writes_file_metadata_and_index(storage: PrivateStorage) -> None:
    assert commit(storage, "demo-1.0-py3-none-any.whl", b"wheel bytes")
    directory = storage.root / "demo"
    assert (directory / "demo-1.0-py3-none-any.whl").read_bytes() == b"wheel bytes"
    assert (directory / "demo-1.0-py3-none-any.whl.metadata").read_bytes() == b"Name: demo\n"
    index = json.loads((directory / "project.json").read_bytes())
    assert [f["filename"] for f in index["files"]] == ["demo-1.0-py3-none-any.whl"]
    assert storage.project_names() == ["Demo"]
    assert not list(storage.temp_dir.iterdir()), "the staged file was moved, not copied"


def test_identical_recommit_is_a_no_op(storage: PrivateStorage) -> None:
    commit(storage, "demo-1.0-py3-none-any.whl", b"same")
    before = tree(storage)
    assert commit(storage, "demo-1.0-py3-none-any.whl", b"same") is False
    assert tree(storage) == before


def test_different_bytes_same_filename_leaves_everything(storage: PrivateStorage) -> None:
    commit(storage, "demo-1.0-py3-none-any.whl", b"first")
    before = tree(storage)
    staged = stage(storage, b"second")
    with pytest.raises(FileExists, match="File already exists"):
        storage.commit_file(staged, record("demo-1.0-py3-none-any.whl", b"second"), b"M", ReleaseInfo("1.0"), "Demo", "demo")
    assert tree(storage) == before
    assert staged.exists(), "the caller still owns (and discards) the staged file"


def test_yank_and_remove_keep_the_name(storage: PrivateStorage) -> None:
    commit(storage, "demo-1.0-py3-none-any.whl", b"a")
    commit(storage, "demo-1.1-py3-none-any.whl", b"b", "1.1")
    updated = storage.update("demo", lambda p: p.with_yank({"demo-1.0-py3-none-any.whl"}, "why"))
    assert updated.file("demo-1.0-py3-none-any.whl").yanked_reason == "why"  # type: ignore[union-attr]
    remaining = storage.remove_files("demo", {"demo-1.0-py3-none-any.whl", "demo-1.1-py3-none-any.whl"})
    assert remaining.files == () and remaining.releases == ()
    assert storage.project_names() == ["Demo"]
    assert set(tree(storage)) == {".projects", "demo/project.json"}


def test_update_of_unknown_project(storage: PrivateStorage) -> None:
    with pytest.raises(ProjectNotFound):
        storage.update("nothing", lambda p: p)


def test_file_on_disk_but_not_indexed_is_invisible_and_replaceable(storage: PrivateStorage) -> None:
    """A crash after the file's rename but before the index write: the index is the truth."""
    commit(storage, "demo-1.0-py3-none-any.whl", b"a")
    (storage.root / "demo" / "demo-2.0-py3-none-any.whl").write_bytes(b"half")
    project = storage.load("demo")
    assert project is not None and project.file("demo-2.0-py3-none-any.whl") is None
    assert commit(storage, "demo-2.0-py3-none-any.whl", b"complete", "2.0")
    assert (storage.root / "demo" / "demo-2.0-py3-none-any.whl").read_bytes() == b"complete"


def test_concurrent_different_files_all_land(storage: PrivateStorage) -> None:
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            commit(storage, f"demo-1.{n}-py3-none-any.whl", f"file {n}".encode(), f"1.{n}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    project = storage.load("demo")
    assert project is not None and len(project.files) == 8


def test_concurrent_same_filename_exactly_one_wins(storage: PrivateStorage) -> None:
    outcomes: list[str] = []

    def one(data: bytes) -> None:
        try:
            commit(storage, "demo-1.0-py3-none-any.whl", data)
            outcomes.append("stored")
        except FileExists:
            outcomes.append("refused")

    threads = [threading.Thread(target=one, args=(f"content {n}".encode(),)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * 5 + ["stored"]
    project = storage.load("demo")
    assert project is not None and len(project.files) == 1
    stored = (storage.root / "demo" / "demo-1.0-py3-none-any.whl").read_bytes()
    assert hashlib.sha256(stored).hexdigest() == project.files[0].sha256


def test_stamps_change_on_every_write(storage: PrivateStorage) -> None:
    commit(storage, "demo-1.0-py3-none-any.whl", b"a")
    first, projects = storage.index_stamp("demo"), storage.projects_stamp()
    storage.update("demo", lambda p: replace(p, display_name="Demo"))
    assert storage.index_stamp("demo") != first
    assert storage.projects_stamp() == projects, "the project list did not change"
    assert storage.index_stamp("missing") is None


def test_write_atomic_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "f"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_sweep_removes_only_old_temp_files(tmp_path: Path) -> None:
    old, young, normal = tmp_path / f"{TEMP_PREFIX}old", tmp_path / f"{TEMP_PREFIX}young", tmp_path / "keep"
    for path in (old, young, normal):
        path.write_bytes(b"x")
    past = time.time() - 7200
    os.utime(old, (past, past))
    os.utime(normal, (past, past))
    assert sweep_temp_files(tmp_path) == 1
    assert not old.exists() and young.exists() and normal.exists()
