"""The open-file cache: descriptors reused within their age, bounded, closed once nobody holds them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from proxy.web.openfiles import MAX_FILES, OpenFile, OpenFiles, fitting


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingExecutor(ThreadPoolExecutor):
    """Counts the jobs given to it (opens and closes)."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.jobs = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def executor() -> Iterator[CountingExecutor]:
    pool = CountingExecutor()
    yield pool
    pool.shutdown(wait=True)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def files(executor: CountingExecutor, clock: Clock) -> AsyncIterator[OpenFiles]:
    cache = OpenFiles(executor, max_files=2, max_age=10.0, clock=clock)
    yield cache
    await cache.close()


def make(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def is_open(entry: OpenFile, path: Path) -> bool:
    """Whether ``entry``'s descriptor still refers to ``path`` (a closed number may be reused)."""
    try:
        return os.readlink(f"/proc/self/fd/{entry.fd}").removesuffix(" (deleted)") == str(path)
    except OSError:
        return False


async def settle(files: OpenFiles) -> None:
    """Wait for the closes scheduled in the executor."""
    await asyncio.gather(*list(files._closing))


async def test_a_file_asked_for_again_is_not_opened_again(files: OpenFiles, executor: CountingExecutor,
                                                          tmp_path: Path) -> None:
    path = make(tmp_path, "a.whl", b"wheel bytes")
    first = await files.acquire(path, "v1")
    files.release(first)
    opens = executor.jobs
    again = await files.acquire(path, "v1")
    assert again is first and executor.jobs == opens == 1
    assert (again.size, os.pread(again.fd, 100, 0)) == (11, b"wheel bytes")
    assert again.mtime_ns == path.stat().st_mtime_ns
    files.release(again)


async def test_another_version_of_the_path_is_opened_afresh(files: OpenFiles, tmp_path: Path) -> None:
    """A file replaced under its name (another version) is never answered with the old bytes."""
    path = make(tmp_path, "a.whl", b"old")
    old = await files.acquire(path, "v1")
    files.release(old)
    tmp = make(tmp_path, "new", b"new bytes")
    tmp.replace(path)
    new = await files.acquire(path, "v2")
    assert new is not old and os.pread(new.fd, 100, 0) == b"new bytes"
    assert os.pread(old.fd, 100, 0) == b"old"  # the old descriptor still holds the old bytes
    files.release(new)


async def test_an_expired_file_is_reopened_and_closed_once_released(files: OpenFiles, clock: Clock,
                                                                    tmp_path: Path) -> None:
    path = make(tmp_path, "a.whl", b"bytes")
    held = await files.acquire(path, "v1")
    clock.now += 10.0
    fresh = await files.acquire(path, "v1")
    assert fresh is not held
    await settle(files)
    assert is_open(held, path), "a held descriptor is never closed under its user"
    files.release(held)
    await settle(files)
    assert not is_open(held, path)
    files.release(fresh)


async def test_the_sweep_releases_an_unlinked_files_space(files: OpenFiles, clock: Clock, tmp_path: Path) -> None:
    """An evicted cached file's blocks are held by a cached descriptor at most max_age seconds."""
    path = make(tmp_path, "a.whl", b"bytes")
    entry = await files.acquire(path, None)
    files.release(entry)
    path.unlink()
    assert files.sweep() == 0 and is_open(entry, path)
    clock.now += 10.0
    assert files.sweep() == 1 and len(files) == 0
    await settle(files)
    assert not is_open(entry, path)


async def test_the_least_recently_used_go_beyond_max_files(files: OpenFiles, tmp_path: Path) -> None:
    paths = [make(tmp_path, f"{i}.whl", b"x" * i) for i in range(3)]
    entries = []
    for path in paths[:2]:
        entries.append(await files.acquire(path, None))
        files.release(entries[-1])
    again = await files.acquire(paths[0], None)  # now the most recently used
    files.release(again)
    third = await files.acquire(paths[2], None)
    await settle(files)
    assert len(files) == 2
    assert is_open(entries[0], paths[0]) and not is_open(entries[1], paths[1])
    files.release(third)


async def test_a_held_file_evicted_stays_open_until_released(executor: CountingExecutor, tmp_path: Path) -> None:
    files = OpenFiles(executor, max_files=1)
    first_path, second_path = make(tmp_path, "1.whl", b"1"), make(tmp_path, "2.whl", b"2")
    first = await files.acquire(first_path, None)
    second = await files.acquire(second_path, None)
    assert len(files) == 1 and first.retired
    await settle(files)
    assert is_open(first, first_path)
    files.release(first)
    await settle(files)
    assert not is_open(first, first_path)
    files.release(second)
    await files.close()
    assert not is_open(second, second_path)


async def test_concurrent_misses_end_with_one_descriptor(files: OpenFiles, tmp_path: Path) -> None:
    path = make(tmp_path, "a.whl", b"bytes")
    entries = await asyncio.gather(*(files.acquire(path, "v") for _ in range(5)))
    assert len({id(entry) for entry in entries}) == 1 and entries[0].users == 5
    for entry in entries:
        files.release(entry)
    await settle(files)
    assert sum(is_open(OpenFile((str(path), None), int(fd), 0, 0, 0.0), path) for fd in os.listdir("/proc/self/fd")) == 1


@pytest.mark.parametrize("kind", ["missing", "directory"])
async def test_no_regular_file_is_file_not_found(files: OpenFiles, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "a.whl"
    if kind == "directory":
        path.mkdir()
    with pytest.raises(FileNotFoundError):
        await files.acquire(path, None)
    assert len(files) == 0


async def test_forget_makes_the_next_request_open_again(files: OpenFiles, tmp_path: Path) -> None:
    path = make(tmp_path, "a.whl", b"bytes")
    entry = await files.acquire(path, None)
    files.forget(entry)
    assert len(files) == 0 and is_open(entry, path)
    files.release(entry)
    await settle(files)
    assert not is_open(entry, path)
    fresh = await files.acquire(path, None)
    assert fresh is not entry
    files.release(fresh)


async def test_with_no_room_a_file_is_still_held_by_its_user(executor: CountingExecutor, tmp_path: Path) -> None:
    """max_files 0 (nothing kept): the file just opened stays open for the request that opened
    it, and closes when that request lets it go; never closed under it."""
    files = OpenFiles(executor, max_files=0)
    path = make(tmp_path, "a.whl", b"bytes")
    entry = await files.acquire(path, None)
    await settle(files)
    assert is_open(entry, path) and os.pread(entry.fd, 10, 0) == b"bytes" and len(files) == 0
    files.release(entry)
    await settle(files)
    assert not is_open(entry, path)
    await files.close()


@pytest.mark.parametrize(("soft_limit", "kept"), [(65536, MAX_FILES), (2384, MAX_FILES), (1024, 128), (256, 32), (4, 0)])
def test_the_files_kept_fit_the_open_file_limit(soft_limit: int, kept: int) -> None:
    """The server raises its limit for 256 of them (proxy.ops.server); where it cannot, an eighth."""
    assert fitting(soft_limit) == kept
