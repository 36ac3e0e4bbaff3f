"""The file cache on disk: part files claimed by one process at a time, written unbuffered, and
followed by identity (the inode a reader has open), never by path (issue 12 H1, M8)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.core.errors import InvalidName
from proxy.storage.upstream_files import FileCache, Part

KEY = ("demo", "demo-1.0.tar.gz")


@pytest.fixture
def cache(tmp_path: Path) -> FileCache:
    files = FileCache(tmp_path)
    files.prepare()
    return files


def claimed(cache: FileCache) -> Part:
    part = cache.claim(*KEY)
    assert part is not None
    return part


def claim_in_another_process(data_dir: Path, key: tuple[str, str]) -> bool:
    """Whether a separate process could claim ``key`` (flock is per open file, so it must be
    another process, or at least another open of the file)."""
    code = (f"import sys; from pathlib import Path; from proxy.storage.upstream_files import FileCache; "
            f"sys.exit(0 if FileCache(Path({str(data_dir)!r})).claim(*{key!r}) else 3)")
    return subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_commit_moves_the_complete_file_into_place_and_keeps_the_readers_descriptor(cache: FileCache) -> None:
    part = claimed(cache)
    part.write(b"wheel bytes")
    assert cache.cached_size(*KEY) is None
    final = cache.commit(part, *KEY)
    assert final == cache.root / "demo" / "demo-1.0.tar.gz"
    assert final.read_bytes() == b"wheel bytes"
    assert cache.cached_size(*KEY) == len(b"wheel bytes")
    assert list(cache.temp_dir.iterdir()) == []
    with pytest.raises(OSError):
        os.fstat(part.fd)  # closed: the lock is released
    assert os.pread(part.read_fd, 100, 0) == b"wheel bytes"  # the readers' descriptor is theirs to close
    os.close(part.read_fd)


def test_discard_leaves_nothing(cache: FileCache) -> None:
    part = claimed(cache)
    part.write(b"half")
    cache.discard(part, *KEY)
    os.close(part.read_fd)
    assert list(cache.temp_dir.iterdir()) == []
    assert not cache.root.joinpath("demo").exists()
    assert cache.open_part(*KEY) is None


def test_what_was_written_is_in_the_file_at_once(cache: FileCache) -> None:
    """M8: no Python buffer between the writer and the file; a reader's pread sees every byte
    the writer counted (the follower spun on empty reads while bytes sat in a buffer)."""
    part = claimed(cache)
    for number in range(5):
        part.write(bytes([number]) * 1000)
        assert os.fstat(part.read_fd).st_size == 1000 * (number + 1)
        assert os.pread(part.read_fd, 1000, 1000 * number) == bytes([number]) * 1000
    cache.discard(part, *KEY)
    os.close(part.read_fd)


def test_only_one_process_downloads_a_file_the_others_follow_it(cache: FileCache, tmp_path: Path) -> None:
    """Single-flight across server processes (--workers): the part file's flock decides."""
    part = claimed(cache)
    part.write(b"partial")
    assert not claim_in_another_process(tmp_path, KEY)
    fd = cache.open_part(*KEY)
    assert fd is not None
    state = cache.part_state(fd, *KEY)
    assert (state.size, state.writing, state.committed) == (len(b"partial"), True, False)
    cache.commit(part, *KEY)
    state = cache.part_state(fd, *KEY)
    assert (state.size, state.writing, state.committed) == (len(b"partial"), False, True)
    assert claim_in_another_process(tmp_path, KEY)  # a new, empty part: the caller checks the cache first
    assert cache.path(*KEY).read_bytes() == b"partial", "claiming again never touches the committed file"
    os.close(fd)
    os.close(part.read_fd)


@pytest.mark.parametrize("then", ["retried", "retried_and_committed", "crashed"])
def test_a_follower_never_takes_another_part_file_for_its_own(cache: FileCache, then: str) -> None:
    """H1: the download a follower has open fails; a retry creates a new part file under the same
    name (and may commit it). The follower's file is not complete, whatever the path says."""
    first = claimed(cache)
    first.write(b"\xee" * 100)
    fd = cache.open_part(*KEY)
    assert fd is not None
    if then == "crashed":  # the writer's process died: its lock went with it
        os.close(first.fd)
    else:
        cache.discard(first, *KEY)
        second = claimed(cache)
        second.write(b"good" * 50)
        if then == "retried_and_committed":
            cache.commit(second, *KEY)
        else:
            cache.discard(second, *KEY)
        os.close(second.read_fd)
    state = cache.part_state(fd, *KEY)
    assert (state.size, state.writing, state.committed) == (100, False, False)
    os.close(fd)
    os.close(first.read_fd)


def test_a_part_file_nobody_writes_is_not_followed(cache: FileCache) -> None:
    cache.part_path(*KEY).write_bytes(b"left over by a crash")
    assert cache.open_part(*KEY) is None


def test_a_part_file_left_by_a_crashed_writer_is_claimed_and_emptied(cache: FileCache) -> None:
    cache.part_path("demo", "x.whl").write_bytes(b"left over")
    part = cache.claim("demo", "x.whl")
    assert part is not None and cache.part_path("demo", "x.whl").stat().st_size == 0
    cache.discard(part, "demo", "x.whl")
    os.close(part.read_fd)


def test_open_cached_gives_the_file_and_its_size(cache: FileCache) -> None:
    assert cache.open_cached(*KEY) is None
    part = claimed(cache)
    part.write(b"12345")
    cache.commit(part, *KEY)
    os.close(part.read_fd)
    opened = cache.open_cached(*KEY)
    assert opened is not None
    fd, size = opened
    cache.remove([KEY])  # evicted meanwhile: what is open stays readable
    assert (size, os.pread(fd, 10, 0)) == (5, b"12345")
    os.close(fd)


@pytest.mark.parametrize(("project", "filename"), [("..", "x.whl"), ("demo", "../x.whl"), ("demo", "a/b.whl")])
def test_file_cache_refuses_paths_outside_its_directory(tmp_path: Path, project: str, filename: str) -> None:
    with pytest.raises(InvalidName):
        FileCache(tmp_path).path(project, filename)


def test_a_restart_sweeps_crashed_downloads_but_never_a_live_one(cache: FileCache) -> None:
    """A worker (re)starting removes part files nobody writes, once old; a download that has run
    for hours (20 GiB over a slow link) is locked by its writer and stays."""
    live = claimed(cache)
    live.write(b"still coming")
    crashed = cache.part_path("demo", "crashed-1.0.tar.gz")
    crashed.write_bytes(b"left over")
    young = cache.part_path("demo", "young-1.0.tar.gz")  # between a writer's open and its lock
    young.write_bytes(b"")
    for path in (cache.part_path(*KEY), crashed):
        os.utime(path, (1000, 1000))
    assert cache.sweep() == 1
    assert sorted(p.name for p in cache.temp_dir.iterdir()) == sorted([cache.part_path(*KEY).name, young.name])
    cache.commit(live, *KEY)
    os.close(live.read_fd)
    assert cache.path(*KEY).read_bytes() == b"still coming"
