"""The last good copy of the advisory data (issue 15): one zip of OSV JSON records and a small
JSON meta, in one directory (``<data_dir>/policy/osv/``).

The zip is stored under a name made from its sha256 (``osv-<sha256[:16]>.zip``) and the meta,
written last, names it: replacing the meta (temp file, fsync, rename) is the one step that
switches copies, so a crash at any point leaves the old copy or the new one, never a mix. A
copy is stored only after every member was read within the limits and at least one OSV record
was found in it. Every method blocks (disk, zip, JSON): callers on the event loop run them in
an executor, except ``stamp`` (one stat).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Any

import structlog

from proxy.core.osv import AdvisoryIndex
from proxy.storage.atomic import TEMP_PREFIX, fsync_dir, move_into_place, write_atomic
from proxy.storage.osv_zip import (
    InvalidAdvisoryData,
    Limits,
    json_files,
    pack_directory,
    read_zip,
    sha256_of,
    source_fingerprint,
)

__all__ = ["AdvisoryStore", "DownloadLock", "InvalidAdvisoryData", "Limits", "StoredMeta", "source_fingerprint"]

log = structlog.get_logger(__name__)
META = "meta.json"
LOCK = "download.lock"
_ZIP_PREFIX = "osv-"
_CHUNK = 1024 * 1024
Stamp = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class StoredMeta:
    """What is known of the stored copy. Times are unix seconds; ``fetched_at`` is the last time
    the source confirmed the copy (a 200, a 304, an unchanged local source); ``checked_at`` the
    last attempt, successful or not; ``last_error`` that attempt's failure, None after a success.
    ``source_stamp`` fingerprints a local source (its files' names, sizes and mtimes)."""

    source: str
    sha256: str
    fetched_at: float
    records: int
    skipped: int = 0
    etag: str | None = None
    last_modified: str | None = None
    source_stamp: str | None = None
    checked_at: float | None = None
    last_error: str | None = None

    @property
    def zip_name(self) -> str:
        return f"{_ZIP_PREFIX}{self.sha256[:16]}.zip"

    @property
    def version(self) -> str:
        """Names the data: the zip's sha256[:16] (``AdvisoryIndex.version``)."""
        return self.sha256[:16]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> StoredMeta:
        """KeyError/TypeError/ValueError when ``data`` is not a meta this module wrote."""
        meta = cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})
        if not isinstance(meta.sha256, str) or len(meta.sha256) != 64 or not isinstance(meta.fetched_at, (int, float)):
            raise ValueError("malformed advisory meta")
        return meta


class DownloadLock:
    """An exclusive lock across processes, taken without waiting: a worker that finds another
    one refreshing skips its turn and picks up the stored copy when ``stamp`` changes. (A
    waiting lock, ``proxy.storage.atomic.locked``, would pin an executor thread for a whole
    download.) flock locks belong to the open file, so two locks in one process exclude each
    other too, and the kernel drops them when a process dies."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._handle: IO[str] | None = None

    def acquire(self) -> bool:
        """True when this lock is now held; False when another holder has it (blocks: a file open)."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self._path, "a")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class AdvisoryStore:
    """The stored copy in ``directory``: ``commit`` a new one, ``renew`` its validators, ``load``
    it as an AdvisoryIndex. Safe for several processes: writers hold ``download_lock()``."""

    def __init__(self, directory: Path, limits: Limits | None = None) -> None:
        self.directory = directory
        self.limits = limits or Limits()
        self._meta_path = directory / META

    def stamp(self) -> Stamp | None:
        """One stat of the meta (inode, mtime ns, size), cheap enough for the event loop: changes
        whenever a copy is stored or renewed; None when nothing is stored."""
        try:
            st = os.stat(self._meta_path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def download_lock(self) -> DownloadLock:
        return DownloadLock(self.directory / LOCK)

    def meta(self) -> StoredMeta | None:
        """The stored meta; None when nothing is stored or the meta is unreadable (logged: the
        next refresh stores a copy again)."""
        try:
            return StoredMeta.from_json(json.loads(self._meta_path.read_bytes()))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("advisory_meta_unreadable", path=str(self._meta_path), error=str(exc))
            return None

    def open_temp(self) -> tuple[Path, IO[bytes]]:
        """A new temp file in the store's directory, open for writing; ``commit`` or ``discard`` it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".zip", dir=self.directory)
        return Path(name), os.fdopen(fd, "wb")

    @staticmethod
    def discard(temp: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()

    def commit(self, temp: Path, meta: StoredMeta) -> tuple[StoredMeta, AdvisoryIndex]:
        """Store the zip at ``temp`` as the copy, with ``meta`` (its sha256, records and skipped
        are filled in here), and return the stored meta and the index read from it. The caller
        holds ``download_lock()``. InvalidAdvisoryData (the temp file removed, the old copy
        kept) when the zip is not readable within the limits or holds no OSV record."""
        try:
            sha256 = sha256_of(temp)
            reading = read_zip(temp, self.limits)
            if not reading.records:
                raise InvalidAdvisoryData(f"no OSV record in the zip ({reading.skipped} members skipped)")
            meta = replace(meta, sha256=sha256, records=reading.records, skipped=reading.skipped, last_error=None)
            with open(temp, "rb+") as handle:
                os.fsync(handle.fileno())
            move_into_place(temp, self.directory / meta.zip_name)
        except BaseException:
            self.discard(temp)
            raise
        self._write_meta(meta)
        self._remove_other_copies(meta.zip_name)
        log.info("advisory_data_stored", source=meta.source, records=meta.records, skipped=meta.skipped,
                 version=meta.version)
        return meta, AdvisoryIndex(reading.by_project, meta.version, meta.fetched_at)

    def renew(self, **changes: Any) -> StoredMeta | None:
        """Rewrite the stored meta with ``changes`` (StoredMeta fields: a 304's ``fetched_at``,
        an error's ``last_error`` and ``checked_at``); None, nothing written, when none is stored."""
        meta = self.meta()
        if meta is None:
            return None
        meta = replace(meta, **changes)
        self._write_meta(meta)
        return meta

    def load(self) -> AdvisoryIndex | None:
        """The stored copy as an AdvisoryIndex (version: the zip's sha256[:16]; fetched_at from the
        meta); None when nothing is stored. Members that are not JSON or not OSV are skipped
        (counted in the meta when stored). InvalidAdvisoryData when the zip's bytes no longer
        match the meta's sha256 or break a limit."""
        for _ in range(3):  # a writer may replace the copy between reading the meta and the zip
            meta = self.meta()
            if meta is None:
                return None
            path = self.directory / meta.zip_name
            try:
                if sha256_of(path) != meta.sha256:
                    raise InvalidAdvisoryData(f"{path} does not match its recorded sha256")
                reading = read_zip(path, self.limits)
            except FileNotFoundError:
                continue
            return AdvisoryIndex(reading.by_project, meta.version, meta.fetched_at)
        raise InvalidAdvisoryData(f"the stored advisory data in {self.directory} keeps changing while read")

    def sweep(self) -> int:
        """Remove what a crash left: temp files, and zips the meta does not name. The caller
        holds ``download_lock()`` (no live writer then). Returns how many files were removed."""
        if not self.directory.is_dir():
            return 0
        meta = self.meta()
        keep = meta.zip_name if meta else None
        removed = 0
        for path in self.directory.iterdir():
            stale = path.name.startswith(TEMP_PREFIX) or (path.name.startswith(_ZIP_PREFIX) and path.name != keep)
            if stale and path.is_file():
                self.discard(path)
                removed += 1
        if removed:
            log.info("advisory_store_swept", removed=removed)
        return removed

    def import_local(self, source: Path) -> Path:
        """``import_directory`` for a directory, else ``import_zip``; FileNotFoundError when it is gone."""
        return self.import_directory(source) if source.is_dir() else self.import_zip(source)

    def import_zip(self, source: Path) -> Path:
        """Copy a local zip into a temp file (for ``commit``). InvalidAdvisoryData past max_download_bytes."""
        if source.stat().st_size > self.limits.max_download_bytes:
            raise InvalidAdvisoryData(f"{source} is larger than max_download_bytes "
                                      f"({self.limits.max_download_bytes})", "max_download_bytes")
        temp, handle = self.open_temp()
        try:
            with handle, open(source, "rb") as reader:
                while chunk := reader.read(_CHUNK):
                    handle.write(chunk)
        except BaseException:
            self.discard(temp)
            raise
        return temp

    def import_directory(self, source: Path) -> Path:
        """Pack a directory's ``*.json`` files (recursively, hidden directories such as .git
        skipped) into a temp zip (for ``commit``). InvalidAdvisoryData past a limit."""
        files = json_files(source)
        temp, handle = self.open_temp()
        try:
            with handle:
                pack_directory(source, files, handle, self.limits)
        except BaseException:
            self.discard(temp)
            raise
        return temp

    def _write_meta(self, meta: StoredMeta) -> None:
        write_atomic(self._meta_path, json.dumps(meta.to_json(), indent=1).encode())

    def _remove_other_copies(self, keep: str) -> None:
        for path in self.directory.glob(f"{_ZIP_PREFIX}*.zip"):
            if path.name != keep:
                self.discard(path)
        fsync_dir(self.directory)


def finish_download(handle: IO[bytes], rest: bytes) -> None:
    """Blocking: write the last bytes of a download and close its temp file."""
    with handle:
        handle.write(rest)
        handle.flush()


def abandon_download(handle: IO[bytes], temp: Path) -> None:
    """Blocking: close and remove the temp file of a download that failed."""
    handle.close()
    AdvisoryStore.discard(temp)
