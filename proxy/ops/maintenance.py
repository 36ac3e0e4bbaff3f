"""Offline care of the data directory: integrity checks (with repair), cache statistics, pruning.

Run by the CLI, beside or without a running server: every change is a rename or an unlink,
which a server reading the same files tolerates (an open file stays readable; a missing cached
file is fetched again).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from proxy.core.errors import CorruptStorage, DataDirUnusable, ProxyError
from proxy.core.models import PrivateProject
from proxy.core.names import WHEEL, normalize
from proxy.core.urls import METADATA_SUFFIX
from proxy.storage.atomic import TEMP_PREFIX, move_into_place
from proxy.storage.distributions import extract_metadata
from proxy.storage.ledger import Ledger, Totals
from proxy.storage.private import INDEX_NAME, PrivateStorage
from proxy.storage.upstream_files import FileCache, Key
from proxy.storage.upstream_pages import PageCache
from proxy.upstream.downloads import expected_digest

_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    message: str
    repaired: str = ""  # what --repair did about it


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    private_files: int = 0
    cached_files: int = 0
    unverifiable: list[Path] = field(default_factory=list)  # cached, but no listing knows its hash


def _digest(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _project_dirs(root: Path) -> Iterator[Path]:
    if root.is_dir():
        yield from sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(TEMP_PREFIX))


def private_names(storage: PrivateStorage) -> set[str]:
    return {d.name for d in _project_dirs(storage.root) if (d / INDEX_NAME).exists()}


def check_private(storage: PrivateStorage, report: CheckReport, repair: bool = False) -> None:
    """Every file the indexes list exists with its size and sha256; every file on disk is listed.

    A listed file that is missing or damaged is only reported: it is what clients were promised,
    and only a backup can restore it. With ``repair``, files no index lists (what a crash between
    placing a file and writing its index leaves) are moved to ``private-quarantine/<project>/``,
    never deleted: see ``PrivateStorage.quarantine_unlisted``.
    """
    for directory in _project_dirs(storage.root):
        index = directory / INDEX_NAME
        if not index.exists():
            moved = _quarantine_private(storage, directory.name) if repair else {}
            report.problems.append(Problem(directory, "project directory without an index",
                                           f"its {len(moved)} file(s) moved to {storage.quarantine_root / directory.name}"
                                           if repair else ""))
            continue
        try:
            project = storage.load(directory.name)
        except CorruptStorage as exc:
            report.problems.append(Problem(index, f"unreadable index: {exc.problem}"))
            continue
        assert project is not None
        expected = _expected_private(project)
        for filename, (size, sha256) in sorted(expected.items()):
            path = directory / filename
            report.private_files += 1
            if not path.is_file():
                report.problems.append(Problem(path, "listed in the index but missing"))
            elif size is not None and path.stat().st_size != size:
                report.problems.append(Problem(path, f"size {path.stat().st_size}, index says {size}"))
            elif _digest(path, "sha256") != sha256:
                report.problems.append(Problem(path, "sha256 does not match the index"))
        unlisted = [path for path in sorted(directory.iterdir())
                    if path.name != INDEX_NAME and not path.name.startswith(TEMP_PREFIX) and path.name not in expected]
        moved = _quarantine_private(storage, directory.name) if repair and unlisted else {}
        for path in unlisted:
            done = f"moved to {moved[path]}" if path in moved else ""
            report.problems.append(Problem(path, "file not listed in the project's index", done))


def _quarantine_private(storage: PrivateStorage, project: str) -> dict[Path, Path]:
    """What was moved where; nothing when the directory is not one storage would have made."""
    if normalize(project) != project:
        return {}
    return dict(storage.quarantine_unlisted(project))


def _expected_private(project: PrivateProject) -> dict[str, tuple[int | None, str]]:
    expected: dict[str, tuple[int | None, str]] = {}
    for stored in project.files:
        expected[stored.filename] = (stored.size, stored.sha256)
        if stored.metadata_sha256:
            expected[stored.filename + METADATA_SUFFIX] = (None, stored.metadata_sha256)
    return expected


def check_cache(files: FileCache, pages: PageCache, private: set[str], report: CheckReport,
                repair: bool) -> None:
    """Cached public files against the hashes of the cached listing; with ``repair``, bad ones and
    ones now shadowed by a private project are moved to ``cache/quarantine`` (fetched again on use)."""
    for directory in _project_dirs(files.root):
        listing = pages.page(directory.name)
        page = listing.page if listing is not None else None
        for path in sorted(directory.iterdir()):
            if path.name.startswith(TEMP_PREFIX):
                continue
            report.cached_files += 1
            problem = None
            if directory.name in private:
                problem = "cached public file of a project that is now private (never served)"
            elif page is not None:
                listed = page.file(path.name.removesuffix(METADATA_SUFFIX))
                hashes = None
                if listed is not None:
                    hashes = listed.core_metadata if path.name.endswith(METADATA_SUFFIX) else listed.hashes
                digest = expected_digest(hashes) if hashes else None
                wheel = directory / path.name.removesuffix(METADATA_SUFFIX)
                if digest is None and listed is not None and _derived_metadata(path, listed.core_metadata, wheel):
                    if path.read_bytes() != _wheel_metadata(wheel):
                        problem = "differs from the METADATA of the cached wheel it was extracted from"
                elif digest is None:
                    report.unverifiable.append(path)
                elif _digest(path, digest[0]) != digest[1]:
                    problem = f"{digest[0]} does not match upstream's listing"
            else:
                report.unverifiable.append(path)
            if problem:
                done = f"moved to {_quarantine(files, (directory.name, path.name))}" if repair else ""
                report.problems.append(Problem(path, problem, done))


def _derived_metadata(path: Path, listed_metadata: dict[str, str] | None, wheel: Path) -> bool:
    """A ``.metadata`` file this server extracted (upstream listed none) from a wheel still cached."""
    return path.name.endswith(METADATA_SUFFIX) and listed_metadata is None and wheel.name.endswith(".whl") \
        and wheel.is_file()


def _wheel_metadata(wheel: Path) -> bytes | None:
    try:
        return extract_metadata(wheel, WHEEL)
    except ProxyError:
        return None


def _quarantine(files: FileCache, key: Key) -> Path:
    project, filename = key
    target = files.root.parent / "quarantine" / project / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    move_into_place(files.path(project, filename), target)
    return target


def check(data_dir: Path, repair: bool = False) -> CheckReport:
    report = CheckReport()
    storage = PrivateStorage(data_dir)
    check_private(storage, report, repair)
    files = FileCache(data_dir)
    if files.root.is_dir():
        pages = PageCache(data_dir / "cache" / "pages", size_limit=2**62)
        try:
            check_cache(files, pages, private_names(storage), report, repair)
        finally:
            pages.close()
    return report


# Statistics and pruning ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheStats:
    private_projects: int
    private_files: int
    private_bytes: int
    cached_projects: int
    cached_files: int
    cached_bytes: int
    page_cache_bytes: int


def _tree_size(root: Path) -> tuple[int, int]:
    """Files and bytes in the project directories below ``root`` (indexes and temp files aside)."""
    count = size = 0
    for directory in _project_dirs(root):
        for entry in os.scandir(directory):
            if entry.is_file() and entry.name != INDEX_NAME and not entry.name.startswith(TEMP_PREFIX):
                count += 1
                size += entry.stat().st_size
    return count, size


@contextlib.contextmanager
def _ledger(files: FileCache) -> Iterator[Ledger]:
    """The ledger the servers share, corrected from a scan of the files first, so that what it
    says (and what every server says in /-/health and /-/metrics) is what is on disk."""
    try:
        with Ledger(files.usage.path) as ledger:
            ledger.reconcile(files.scan(), files.entry)
            yield ledger
    except sqlite3.Error as exc:
        raise DataDirUnusable(str(files.usage.path), f"the cache's ledger cannot be used ({exc})",
                              "remove it: a server rebuilds it from the cached files when it starts") from None


def stats(data_dir: Path) -> CacheStats:
    storage = PrivateStorage(data_dir)
    files = FileCache(data_dir)
    private_count, private_size = _tree_size(storage.root)
    cached_projects, totals = 0, Totals(0, 0)
    if files.root.is_dir():
        try:
            with _ledger(files) as ledger:
                cached_projects, totals = ledger.projects(), ledger.totals()
        except DataDirUnusable:  # e.g. a read-only copy of a data directory: the files say it too
            entries = files.scan()
            cached_projects = len({entry.key[0] for entry in entries})
            totals = Totals(len(entries), sum(entry.size for entry in entries))
    page_bytes = 0
    if (data_dir / "cache" / "pages").is_dir():
        pages = PageCache(data_dir / "cache" / "pages", size_limit=2**62)
        page_bytes = pages.volume()
        pages.close()
    return CacheStats(
        private_projects=len(private_names(storage)), private_files=private_count, private_bytes=private_size,
        cached_projects=cached_projects, cached_files=totals.files, cached_bytes=totals.bytes,
        page_cache_bytes=page_bytes,
    )


@dataclass(frozen=True, slots=True)
class PruneResult:
    removed: list[Key]
    freed: int
    remaining_bytes: int


def prune(data_dir: Path, max_size: int | None) -> PruneResult:
    """Remove cached files of now-private projects, then least recently used ones beyond
    ``max_size`` (by the last uses every server recorded). Private files are not in the file
    cache, so they are never candidates. Safe beside running servers: they share the ledger."""
    files = FileCache(data_dir, max_size)
    if not files.root.is_dir():
        return PruneResult([], 0, 0)
    shadowed = private_names(PrivateStorage(data_dir))
    with _ledger(files) as ledger:
        doomed = [key for key in ledger.keys() if key[0] in shadowed]
        ledger.forget(doomed)
        freed = files.remove(doomed)
        if max_size is not None:
            # An explicit prune spares nothing: a file a server is sending stays readable to it.
            eviction = ledger.evict(max_size, frozenset(), time.time(), files.remove)
            doomed += eviction.keys
            freed += eviction.freed
        return PruneResult(doomed, freed, ledger.totals().bytes)
