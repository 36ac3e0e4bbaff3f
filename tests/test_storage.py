"""Private storage on disk: atomic commits, duplicates (E4), concurrency across threads, crash leftovers."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from proxy.core.errors import FileExists, InvalidName, ProjectNotFound
from proxy.core.models import ReleaseInfo, StoredFile
from proxy.core.timestamps import utc_now
from proxy.storage.atomic import TEMP_PREFIX, sweep_temp_files, write_atomic
from proxy.storage.private import PrivateStorage
from tests.builders import Dist

WHEEL = "demo-1.0-py3-none-any.whl"
LONG_AGO = datetime(2020, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def storage(tmp_path: Path) -> PrivateStorage:
    store = PrivateStorage(tmp_path)
    store.prepare()
    return store


def stage(storage: PrivateStorage, data: bytes) -> Path:
    """What the upload service does: a temp file in the data dir, written and fsynced."""
    path = storage.new_temp_path()
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def record(filename: str, data: bytes, version: str = "1.0") -> StoredFile:
    return StoredFile(
        filename=filename, version=version, packagetype="bdist_wheel", python_version="py3", size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), md5=hashlib.md5(data).hexdigest(),
        blake2_256=hashlib.blake2b(data, digest_size=32).hexdigest(), upload_time=LONG_AGO, uploader="alice",
        metadata_sha256=hashlib.sha256(b"Name: demo\n").hexdigest(),
    )


def commit(storage: PrivateStorage, filename: str, data: bytes, version: str = "1.0",
           project: str = "demo", display_name: str = "Demo") -> bool:
    return storage.commit_file(stage(storage, data), record(filename, data, version), b"Name: demo\n",
                               ReleaseInfo(version, summary=f"v{version}"), display_name, project)


def tree(storage: PrivateStorage) -> dict[str, bytes]:
    """Every stored file and its bytes, to prove a failed operation changed nothing."""
    return {str(p.relative_to(storage.root)): p.read_bytes() for p in storage.root.rglob("*") if p.is_file()}


def run_threads(target: Callable[[int], None], count: int) -> None:
    """Start ``count`` threads that wait at a barrier, so their commits really overlap."""
    barrier = threading.Barrier(count)

    def body(n: int) -> None:
        barrier.wait()
        target(n)

    threads = [threading.Thread(target=body, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_commit_writes_file_metadata_and_index(storage: PrivateStorage) -> None:
    before = utc_now()
    assert commit(storage, WHEEL, b"wheel bytes") is True
    directory = storage.root / "demo"
    assert (directory / WHEEL).read_bytes() == b"wheel bytes"
    assert (directory / f"{WHEEL}.metadata").read_bytes() == b"Name: demo\n"
    index = json.loads((directory / "project.json").read_bytes())
    assert (index["name"], index["display_name"], index["serial"]) == ("demo", "Demo", 1)
    [file] = index["files"]
    assert file["filename"] == WHEEL
    assert file["sha256"] == hashlib.sha256(b"wheel bytes").hexdigest()
    assert file["size"] == len(b"wheel bytes")
    assert [r["summary"] for r in index["releases"]] == ["v1.0"]
    assert storage.project_names() == ["Demo"]
    assert list(storage.temp_dir.iterdir()) == [], "the staged file was moved, not copied"
    stored = storage.load("demo")
    assert stored is not None and stored.files[0].upload_time >= before, "E6: upload-time is the commit time"


def test_commit_of_a_real_wheel_and_sdist(storage: PrivateStorage) -> None:
    dist = Dist("demo", "1.0")
    for filename, data in ((dist.wheel_filename, dist.wheel()), (dist.sdist_filename, dist.sdist())):
        assert commit(storage, filename, data)
        assert storage.file_path("demo", filename).read_bytes() == data
    project = storage.load("demo")
    assert project is not None
    assert sorted(f.filename for f in project.files) == sorted([dist.wheel_filename, dist.sdist_filename])
    assert project.versions() == ["1.0"] and len(project.releases) == 1


def test_e4_identical_recommit_is_a_no_op(storage: PrivateStorage) -> None:
    """E4: same filename, same bytes: success, nothing changes (not even the serial)."""
    commit(storage, WHEEL, b"same")
    before = tree(storage)
    staged = stage(storage, b"same")
    assert storage.commit_file(staged, record(WHEEL, b"same"), b"Name: demo\n", ReleaseInfo("1.0"), "Demo", "demo") is False
    assert tree(storage) == before
    assert staged.exists(), "the caller discards the staged file"


def test_e4_different_bytes_same_filename_raise_and_change_nothing(storage: PrivateStorage) -> None:
    """E4: same filename, different bytes: 'File already exists', stored file and index untouched."""
    commit(storage, WHEEL, b"first")
    before = tree(storage)
    stamp = storage.index_stamp("demo")
    staged = stage(storage, b"second")
    with pytest.raises(FileExists, match="File already exists") as error:
        storage.commit_file(staged, record(WHEEL, b"second"), b"Name: other\n", ReleaseInfo("1.0"), "Demo", "demo")
    assert error.value.status == 400
    assert tree(storage) == before
    assert storage.index_stamp("demo") == stamp
    assert staged.read_bytes() == b"second", "the caller still owns (and discards) the staged file"


def test_pep440_equal_versions_share_one_release(storage: PrivateStorage) -> None:
    """A3: a '1.0.0' file joins the release first uploaded as '1.0'."""
    commit(storage, WHEEL, b"a", "1.0")
    commit(storage, "demo-1.0.0.tar.gz", b"b", "1.0.0")
    project = storage.load("demo")
    assert project is not None
    assert [r.version for r in project.releases] == ["1.0"]
    assert {f.version for f in project.files} == {"1.0"}


def test_yank_and_unyank(storage: PrivateStorage) -> None:
    commit(storage, WHEEL, b"a")
    commit(storage, "demo-1.1-py3-none-any.whl", b"b", "1.1")
    updated = storage.update("demo", lambda p: p.with_yank({WHEEL}, "broken"))
    assert {f.filename: f.yanked_reason for f in updated.files} == {WHEEL: "broken", "demo-1.1-py3-none-any.whl": None}
    assert storage.load("demo") == updated
    unyanked = storage.update("demo", lambda p: p.with_yank({WHEEL}, None))
    assert all(not f.yanked for f in unyanked.files)
    assert unyanked.serial == updated.serial + 1


def test_update_of_unknown_project(storage: PrivateStorage) -> None:
    with pytest.raises(ProjectNotFound):
        storage.update("nothing", lambda p: p)
    assert storage.load("nothing") is None


def test_remove_files_keeps_the_project_listed(storage: PrivateStorage) -> None:
    """Removing every file keeps the name private (no upstream project can take its place)."""
    commit(storage, WHEEL, b"a")
    commit(storage, "demo-1.1-py3-none-any.whl", b"b", "1.1")
    remaining = storage.remove_files("demo", {WHEEL})
    assert [f.filename for f in remaining.files] == ["demo-1.1-py3-none-any.whl"]
    assert [r.version for r in remaining.releases] == ["1.1"]
    assert not storage.file_path("demo", WHEEL).exists()
    assert not storage.file_path("demo", f"{WHEEL}.metadata").exists()
    empty = storage.remove_files("demo", {"demo-1.1-py3-none-any.whl"})
    assert empty.files == () and empty.releases == ()
    assert storage.project_names() == ["Demo"]
    assert set(tree(storage)) == {".projects", "demo/project.json"}


def test_project_names_sorted_by_normalised_name(storage: PrivateStorage) -> None:
    commit(storage, "zeta-1.0-py3-none-any.whl", b"z", project="zeta", display_name="Zeta")
    commit(storage, "alpha_b-1.0-py3-none-any.whl", b"a", project="alpha-b", display_name="Alpha_B")
    commit(storage, "mid-1.0-py3-none-any.whl", b"m", project="mid", display_name="MID")
    assert storage.project_names() == ["Alpha_B", "MID", "Zeta"]


def test_project_names_of_empty_storage(tmp_path: Path) -> None:
    assert PrivateStorage(tmp_path).project_names() == []


def test_crash_leftovers_are_not_listed(storage: PrivateStorage) -> None:
    """A crash between the file's rename and the index write: project.json is the truth."""
    commit(storage, WHEEL, b"a")
    (storage.root / "demo" / "demo-2.0-py3-none-any.whl").write_bytes(b"half")
    (storage.root / "half-created").mkdir()  # crashed before its first project.json
    project = storage.load("demo")
    assert project is not None
    assert [f.filename for f in project.files] == [WHEEL]
    assert storage.project_names() == ["Demo"]
    # The leftover does not block a later, complete upload of that filename.
    assert commit(storage, "demo-2.0-py3-none-any.whl", b"complete", "2.0")
    assert (storage.root / "demo" / "demo-2.0-py3-none-any.whl").read_bytes() == b"complete"


def test_concurrent_commits_of_different_files_all_land(storage: PrivateStorage) -> None:
    """Two writers of one project never lose each other's file from project.json."""
    errors: list[Exception] = []

    def one(n: int) -> None:
        try:
            commit(storage, f"demo-1.{n}-py3-none-any.whl", f"file {n}".encode(), f"1.{n}")
        except Exception as exc:  # noqa: BLE001 - a thread cannot raise into the test: reported below
            errors.append(exc)

    run_threads(one, 8)
    assert errors == []
    project = storage.load("demo")
    assert project is not None
    assert sorted(f.filename for f in project.files) == sorted(f"demo-1.{n}-py3-none-any.whl" for n in range(8))
    assert project.serial == 8
    for n in range(8):
        assert storage.file_path("demo", f"demo-1.{n}-py3-none-any.whl").read_bytes() == f"file {n}".encode()


def test_concurrent_commits_of_one_filename_exactly_one_wins(storage: PrivateStorage) -> None:
    """E4 under a race: one upload is stored, every other one gets 'File already exists'."""
    outcomes: list[str] = []
    errors: list[Exception] = []

    def one(n: int) -> None:
        try:
            outcomes.append("stored" if commit(storage, WHEEL, f"content {n}".encode()) else "identical")
        except FileExists:
            outcomes.append("refused")
        except Exception as exc:  # noqa: BLE001 - a thread cannot raise into the test: reported below
            errors.append(exc)

    run_threads(one, 6)
    assert errors == []
    assert sorted(outcomes) == ["refused"] * 5 + ["stored"]
    project = storage.load("demo")
    assert project is not None and len(project.files) == 1
    on_disk = (storage.root / "demo" / WHEEL).read_bytes()
    assert hashlib.sha256(on_disk).hexdigest() == project.files[0].sha256


def test_stamps_change_on_every_write(storage: PrivateStorage) -> None:
    assert storage.projects_stamp() is None
    commit(storage, WHEEL, b"a")
    first, projects = storage.index_stamp("demo"), storage.projects_stamp()
    assert first is not None and projects is not None
    storage.update("demo", lambda p: replace(p, display_name="DEMO"))
    assert storage.index_stamp("demo") != first
    assert storage.projects_stamp() == projects, "the project list did not change"
    commit(storage, "other-1.0-py3-none-any.whl", b"o", project="other", display_name="other")
    assert storage.projects_stamp() != projects, "a new project changes the list"
    assert storage.index_stamp("missing") is None


@pytest.mark.parametrize("filename", ["../x.whl", "/etc/passwd", "a/b.whl", ".hidden", "x\x00.whl"])
def test_unsafe_filenames_never_become_paths(storage: PrivateStorage, filename: str) -> None:
    with pytest.raises(InvalidName):
        storage.file_path("demo", filename)


def test_write_atomic_replaces_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f"
    write_atomic(target, b"one")
    write_atomic(target, b"two", mode=0o600)
    assert target.read_bytes() == b"two"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_write_atomic_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    write_atomic(target, b"old")
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"], "the temp file was removed"


def test_sweep_removes_only_old_temp_files(tmp_path: Path) -> None:
    nested = tmp_path / "private" / "demo"
    nested.mkdir(parents=True)
    old, young, normal = tmp_path / f"{TEMP_PREFIX}old", tmp_path / f"{TEMP_PREFIX}young", tmp_path / "keep"
    old_nested = nested / f"{TEMP_PREFIX}abc"
    for path in (old, young, normal, old_nested):
        path.write_bytes(b"x")
    past = time.time() - 7200
    for path in (old, normal, old_nested):
        os.utime(path, (past, past))
    assert sweep_temp_files(tmp_path) == 2
    assert not old.exists() and not old_nested.exists()
    assert young.exists() and normal.exists()
    assert sweep_temp_files(tmp_path) == 0


def test_sweep_of_a_staged_upload_left_by_a_crash(storage: PrivateStorage) -> None:
    staged = stage(storage, b"half an upload")
    past = time.time() - 7200
    os.utime(staged, (past, past))
    fresh = stage(storage, b"an upload in progress")
    assert sweep_temp_files(storage.temp_dir) == 1
    assert not staged.exists() and fresh.exists()


def test_project_names_come_from_one_list_rebuilt_when_unusable(storage: PrivateStorage) -> None:
    """Start-up and the root page read one names file, not every project's index (issue 5:
    10,000 private projects). An old-format or missing list is rebuilt from the indexes."""
    commit(storage, WHEEL, b"a")
    names_file = storage.root / ".projects"
    assert json.loads(names_file.read_bytes())["names"] == {"demo": "Demo"}
    names_file.write_text("demo")  # what an older version wrote
    storage.check_names()
    assert json.loads(names_file.read_bytes())["names"] == {"demo": "Demo"}
    names_file.unlink()
    assert storage.project_names() == ["Demo"]
    assert names_file.exists()


def test_a_project_missing_from_the_list_is_found_at_start_up(storage: PrivateStorage) -> None:
    """A crash between a new project's index and the list: the next start notices and rebuilds."""
    commit(storage, WHEEL, b"a")
    (storage.root / ".projects").write_text(json.dumps({"format": 1, "names": {}}))
    assert storage.project_names() == []
    storage.check_names()
    assert storage.project_names() == ["Demo"]


def test_rendered_pages_are_kept_per_index_version_and_torn_files_ignored(tmp_path: Path) -> None:
    """Issue 5: a page rendered once is read back after a restart, for that index version only."""
    from proxy.storage.private_pages import RenderedPages

    pages = RenderedPages(tmp_path)
    assert pages.read("demo", "1-2-3", "html") is None
    pages.write("demo", "1-2-3", "html", b"<html>v1</html>")
    pages.write("demo", "1-2-3", "json", b"{}")
    assert pages.read("demo", "1-2-3", "html") == b"<html>v1</html>"
    assert pages.read("demo", "9-9-9", "html") is None, "another index version: render again"
    pages.write("demo", "9-9-9", "html", b"<html>v2</html>")
    names = sorted(p.name for p in (tmp_path / "cache" / "private-pages" / "demo").iterdir())
    assert [n.split(".")[:2] for n in names] == [["1-2-3", "json"], ["9-9-9", "html"]], "older html removed"
    torn = next((tmp_path / "cache" / "private-pages" / "demo").glob("9-9-9.html.*"))
    torn.write_bytes(b"<html>v")  # a crash left half of it
    assert pages.read("demo", "9-9-9", "html") is None


# --- H1: one distribution per identity, decided under the project's lock ----------------------------


def commit_as(storage: PrivateStorage, filename: str, data: bytes, version: str, packagetype: str) -> bool:
    return storage.commit_file(stage(storage, data), replace(record(filename, data, version), packagetype=packagetype),
                               b"Name: demo\n", ReleaseInfo(version), "Demo", "demo")


@pytest.mark.parametrize(("filename", "version", "packagetype", "needle"), [
    pytest.param("Demo-1.0.0-py3-none-any.whl", "1.0.0", "bdist_wheel", "same distribution", id="wheel-name-case"),
    pytest.param("demo-1.0.0.0-py3-none-any.whl", "1.0.0.0", "bdist_wheel", "same distribution", id="wheel-version-zeros"),
    pytest.param("demo-1.0.0.tar.gz", "1.0.0", "sdist", "at most one sdist", id="second-sdist-other-spelling"),
    pytest.param("demo-1.0-1-py3-none-any.whl", "1.0", "bdist_wheel", "same content", id="same-bytes-new-identity"),
])
def test_h1_duplicate_under_another_filename_is_refused(storage: PrivateStorage, filename: str, version: str,
                                                        packagetype: str, needle: str) -> None:
    """H1: "File already exists" (twine's --skip-existing text), storage untouched, staged file kept."""
    commit_as(storage, WHEEL, b"the wheel", "1.0", "bdist_wheel")
    commit_as(storage, "demo-1.0.tar.gz", b"the sdist", "1.0", "sdist")
    before, stamp = tree(storage), storage.index_stamp("demo")
    data = b"the wheel" if needle == "same content" else b"other bytes"
    staged = stage(storage, data)
    with pytest.raises(FileExists, match="^File already exists: ") as error:
        storage.commit_file(staged, replace(record(filename, data, version), packagetype=packagetype),
                            b"Name: demo\n", ReleaseInfo(version), "Demo", "demo")
    assert needle in error.value.reason
    assert error.value.existing in (WHEEL, "demo-1.0.tar.gz")
    assert error.value.status == 400
    assert tree(storage) == before and storage.index_stamp("demo") == stamp
    assert staged.exists(), "the caller still owns (and discards) the staged file"


def test_h1_new_build_tag_and_new_tag_set_are_new_files(storage: PrivateStorage) -> None:
    """H1: a rebuild with a build tag, or another tag set, is another distribution of the release."""
    commit_as(storage, WHEEL, b"a", "1.0", "bdist_wheel")
    assert commit_as(storage, "demo-1.0-1-py3-none-any.whl", b"b", "1.0", "bdist_wheel")
    assert commit_as(storage, "demo-1.0-py2.py3-none-any.whl", b"c", "1.0", "bdist_wheel")
    project = storage.load("demo")
    assert project is not None and len(project.files) == 3


def test_h1_concurrent_commits_of_one_identity_under_many_filenames_store_one(storage: PrivateStorage) -> None:
    """H1 under a race (threads here; the lock is a flock, so processes too): of eight spellings of
    demo 1.0.0's wheel, each with other bytes, exactly one is stored and listed."""
    spellings = ["demo-1.0.0", "Demo-1.0.0", "demo-01.0.0", "demo-1.0", "DEMO-1.0.0.0", "demo-v1.0", "demo-1.00", "Demo-1"]
    outcomes: list[str] = []
    errors: list[Exception] = []

    def one(n: int) -> None:
        filename = f"{spellings[n]}-py3-none-any.whl"
        version = spellings[n].split("-", 1)[1]
        try:
            commit_as(storage, filename, f"content {n}".encode(), version, "bdist_wheel")
            outcomes.append("stored")
        except FileExists:
            outcomes.append("refused")
        except Exception as exc:  # noqa: BLE001 - a thread cannot raise into the test: reported below
            errors.append(exc)

    run_threads(one, len(spellings))
    assert errors == []
    assert sorted(outcomes) == ["refused"] * (len(spellings) - 1) + ["stored"]
    project = storage.load("demo")
    assert project is not None
    [stored] = project.files
    assert hashlib.sha256(storage.file_path("demo", stored.filename).read_bytes()).hexdigest() == stored.sha256
    wheels = sorted(p.name for p in (storage.root / "demo").glob("*.whl"))
    assert wheels == [stored.filename], "the refused files never reached the project directory"
