"""One contract for every private store (issue 14): the filesystem store of the embedded default
and the SQL store on SQLite and on PostgreSQL commit, refuse duplicates (issue 11's rule, every
kind), race, yank, remove and release alike."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from proxy.core.errors import FileExists, ProjectNotEmpty, ProjectNotFound
from proxy.core.models import ReleaseInfo
from proxy.core.timestamps import utc_now
from tests.builders import Dist
from tests.storebackends import (
    KINDS,
    METADATA,
    WHEEL,
    Backend,
    PrivateStore,
    commit,
    file_path,
    open_backend,
    record,
    stage,
)


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from open_backend(request, request.param, tmp_path)


@pytest.fixture
def store(backend: Backend) -> PrivateStore:
    return backend.private()


def run_threads(target: Callable[[int], None], count: int) -> None:
    """Start ``count`` threads that wait at a barrier, so their commits really overlap; any
    exception of theirs fails the test."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(n: int) -> None:
        barrier.wait()
        try:
            target(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_commit_lists_the_file_with_its_metadata_and_release(store: PrivateStore) -> None:
    before = utc_now()
    assert commit(store, WHEEL, b"wheel bytes") is True
    project = store.load("demo")
    assert project is not None
    assert (project.name, project.display_name, project.serial) == ("demo", "Demo", 1)
    [stored] = project.files
    assert stored == replace(record(WHEEL, b"wheel bytes"), upload_time=stored.upload_time)
    assert stored.upload_time >= before, "E6: upload-time is the commit time"
    assert stored.upload_time.tzinfo is not None
    assert project.releases == (ReleaseInfo("1.0", summary="v1.0", classifiers=("A :: B",),
                                            project_urls=(("Home", "https://example.org"),)),)
    assert file_path(store, "demo", WHEEL).read_bytes() == b"wheel bytes"
    assert file_path(store, "demo", f"{WHEEL}.metadata").read_bytes() == METADATA
    assert store.project_names() == ["Demo"]
    assert list(store.temp_dir.iterdir()) == [], "the staged file was moved, not copied"


def test_a_second_instance_sees_every_change(backend: Backend) -> None:
    """Another process (or replica) on the same storage reads what this one wrote."""
    first, second = backend.private(), backend.private()
    commit(first, WHEEL, b"a")
    assert second.load("demo") == first.load("demo")
    second.update("demo", lambda p: p.with_yank({WHEEL}, "broken"))
    loaded = first.load("demo")
    assert loaded is not None and loaded.files[0].yanked_reason == "broken"


def test_a_real_wheel_and_sdist_make_one_release(store: PrivateStore) -> None:
    dist = Dist("demo", "1.0")
    for filename, data in ((dist.wheel_filename, dist.wheel()), (dist.sdist_filename, dist.sdist())):
        assert commit(store, filename, data)
        assert file_path(store, "demo", filename).read_bytes() == data
    project = store.load("demo")
    assert project is not None
    assert [f.filename for f in project.files] == [dist.wheel_filename, dist.sdist_filename], "upload order"
    assert project.versions() == ["1.0"] and len(project.releases) == 1


def test_e4_identical_recommit_is_a_no_op(store: PrivateStore) -> None:
    """E4: same filename, same bytes: success, nothing changes (not even the serial)."""
    commit(store, WHEEL, b"same")
    before = store.load("demo")
    staged = stage(store, b"same")
    assert store.commit_file(staged, record(WHEEL, b"same"), METADATA, ReleaseInfo("1.0"), "Demo", "demo") is False
    assert store.load("demo") == before
    assert staged.exists(), "the caller discards the staged file"


# Each way a new file can duplicate the stored demo-1.0-py3-none-any.whl (b"stored"): filename,
# version, bytes and type of the new one, and the stored file the refusal names (None: the
# filename itself is taken).
DUPLICATES = {
    "same-filename-other-bytes": (WHEEL, "1.0", b"other", None),
    "same-distribution-equal-version": ("demo-1.0.0-py3-none-any.whl", "1.0.0", b"other", WHEEL),
    "same-distribution-tags-reordered": ("demo-1.0-py3.py2-none-any.whl", "1.0", b"x", None),
    "same-bytes-other-version": ("demo-2.0-py3-none-any.whl", "2.0", b"stored", WHEEL),
}


@pytest.mark.parametrize(("filename", "version", "data", "existing"), DUPLICATES.values(), ids=DUPLICATES.keys())
def test_duplicates_are_refused_and_change_nothing(store: PrivateStore, filename: str, version: str, data: bytes,
                                                   existing: str | None) -> None:
    commit(store, WHEEL, b"stored")
    commit(store, "demo-1.0-py2.py3-none-any.whl", b"both pythons")
    before = store.load("demo")
    staged = stage(store, data)
    with pytest.raises(FileExists, match="^File already exists") as error:
        store.commit_file(staged, record(filename, data, version), METADATA, ReleaseInfo(version), "Demo", "demo")
    if filename == "demo-1.0-py3.py2-none-any.whl":
        existing = "demo-1.0-py2.py3-none-any.whl"  # {py2, py3} is one tag set, however ordered
    assert error.value.existing == existing
    assert store.load("demo") == before
    assert file_path(store, "demo", WHEEL).read_bytes() == b"stored"
    assert staged.read_bytes() == data, "the caller still owns (and discards) the staged file"


def test_one_sdist_per_release(store: PrivateStore) -> None:
    commit(store, "demo-1.0.tar.gz", b"tar")
    with pytest.raises(FileExists, match="same distribution") as error:
        commit(store, "demo-1.0.0.zip", b"zip", "1.0.0")
    assert error.value.existing == "demo-1.0.tar.gz"
    project = store.load("demo")
    assert project is not None and [f.filename for f in project.files] == ["demo-1.0.tar.gz"]


def test_other_build_tags_and_tags_are_other_distributions(store: PrivateStore) -> None:
    names = [WHEEL, "demo-1.0-1-py3-none-any.whl", "demo-1.0-2b-py3-none-any.whl", "demo-1.0-cp311-cp311-linux_x86_64.whl",
             "demo-1.0.post1-py3-none-any.whl", "demo-1.0.tar.gz", "demo-1.1.tar.gz"]
    for n, filename in enumerate(names):
        version = filename.split("-")[1].removesuffix(".tar.gz")
        assert commit(store, filename, f"file {n}".encode(), version), filename
    project = store.load("demo")
    assert project is not None and [f.filename for f in project.files] == names
    assert project.versions() == ["1.0", "1.0.post1", "1.1"]


def test_pep440_equal_versions_share_one_release(store: PrivateStore) -> None:
    """A3: a '1.0.0' file joins the release first uploaded as '1.0'."""
    commit(store, WHEEL, b"a", "1.0")
    commit(store, "demo-1.0.0.tar.gz", b"b", "1.0.0")
    project = store.load("demo")
    assert project is not None
    assert [r.version for r in project.releases] == ["1.0"]
    assert {f.version for f in project.files} == {"1.0"}


def test_yank_and_unyank(store: PrivateStore) -> None:
    commit(store, WHEEL, b"a")
    commit(store, "demo-1.1-py3-none-any.whl", b"b", "1.1")
    updated = store.update("demo", lambda p: p.with_yank({WHEEL}, "broken"))
    assert {f.filename: f.yanked_reason for f in updated.files} == {WHEEL: "broken", "demo-1.1-py3-none-any.whl": None}
    assert store.load("demo") == updated
    unyanked = store.update("demo", lambda p: p.with_yank({WHEEL}, None))
    assert all(not f.yanked for f in unyanked.files)
    assert unyanked.serial == updated.serial + 1
    assert store.load("demo") == unyanked
    reasonless = store.update("demo", lambda p: p.with_yank({WHEEL}, ""))
    assert [f.yanked for f in reasonless.files] == [True, False], "PEP 592: yanked without a reason"
    assert store.load("demo") == reasonless


def test_update_of_an_unknown_project(store: PrivateStore) -> None:
    with pytest.raises(ProjectNotFound):
        store.update("nothing", lambda p: p)
    assert store.load("nothing") is None


def test_remove_files_keeps_the_project_listed(store: PrivateStore) -> None:
    """Removing every file keeps the name private (no upstream project can take its place)."""
    commit(store, WHEEL, b"a")
    commit(store, "demo-1.1-py3-none-any.whl", b"b", "1.1")
    remaining = store.remove_files("demo", {WHEEL})
    assert [f.filename for f in remaining.files] == ["demo-1.1-py3-none-any.whl"]
    assert [r.version for r in remaining.releases] == ["1.1"]
    assert store.load("demo") == remaining
    assert not file_path(store, "demo", WHEEL).exists()
    assert not file_path(store, "demo", f"{WHEEL}.metadata").exists()
    empty = store.remove_files("demo", {"demo-1.1-py3-none-any.whl"})
    assert empty.files == () and empty.releases == ()
    assert store.project_names() == ["Demo"]
    assert commit(store, WHEEL, b"a again"), "a removed filename can be uploaded again"


def test_release_makes_the_name_public_again(store: PrivateStore) -> None:
    with pytest.raises(ProjectNotFound):
        store.release("demo")
    commit(store, WHEEL, b"a")
    before = store.load("demo")
    with pytest.raises(ProjectNotEmpty):
        store.release("demo")
    assert store.load("demo") == before
    assert store.release("demo", with_files=True) == before
    assert store.load("demo") is None
    assert store.project_names() == []
    assert not file_path(store, "demo", WHEEL).exists()
    assert commit(store, WHEEL, b"a new project", display_name="DEMO")
    again = store.load("demo")
    assert again is not None and (again.display_name, again.serial, len(again.files)) == ("DEMO", 1, 1)


def test_project_names_sorted_by_normalised_name(store: PrivateStore) -> None:
    commit(store, "zeta-1.0-py3-none-any.whl", b"z", project="zeta", display_name="Zeta")
    commit(store, "alpha_b-1.0-py3-none-any.whl", b"a", project="alpha-b", display_name="Alpha_B")
    commit(store, "alphab-1.0-py3-none-any.whl", b"c", project="alphab", display_name="alphab")
    commit(store, "mid-1.0-py3-none-any.whl", b"m", project="mid", display_name="MID")
    assert store.project_names() == ["Alpha_B", "alphab", "MID", "Zeta"]


def test_concurrent_commits_of_different_files_all_land(store: PrivateStore) -> None:
    """Writers of one project never lose each other's file."""
    run_threads(lambda n: commit(store, f"demo-1.{n}-py3-none-any.whl", f"file {n}".encode(), f"1.{n}"), 8)
    project = store.load("demo")
    assert project is not None
    assert sorted(f.filename for f in project.files) == sorted(f"demo-1.{n}-py3-none-any.whl" for n in range(8))
    assert project.serial == 8
    for n in range(8):
        assert file_path(store, "demo", f"demo-1.{n}-py3-none-any.whl").read_bytes() == f"file {n}".encode()


@pytest.mark.parametrize("same_filename", [True, False], ids=["one-filename", "one-distribution"])
def test_concurrent_commits_of_one_distribution_exactly_one_wins(backend: Backend, same_filename: bool) -> None:
    """Issue 11 under a race, each thread with its own store instance (its own connections):
    one upload is stored, every other one gets 'File already exists'."""
    stores = [backend.private() for _ in range(6)]
    outcomes: list[str] = []

    def one(n: int) -> None:
        version = "1.0" if same_filename else "1" + ".0" * (n + 1)  # 1.0, 1.0.0, ...: one PEP 440 version
        try:
            stored = commit(stores[n], f"demo-{version}-py3-none-any.whl", f"content {n}".encode(), version)
            outcomes.append("stored" if stored else "identical")
        except FileExists:
            outcomes.append("refused")

    run_threads(one, 6)
    assert sorted(outcomes) == ["refused"] * 5 + ["stored"]
    project = stores[0].load("demo")
    assert project is not None and len(project.files) == 1 and project.serial == 1
    on_disk = file_path(stores[0], "demo", project.files[0].filename).read_bytes()
    assert hashlib.sha256(on_disk).hexdigest() == project.files[0].sha256
