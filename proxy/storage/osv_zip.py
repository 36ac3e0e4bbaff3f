"""Zips of OSV records (issue 15): read within limits (members, each member's and the total
decompressed size: a zip bomb is refused before it is inflated), packed from a directory of
``*.json`` files, fingerprinted. Every function blocks: run them in an executor."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from proxy.core.errors import ProxyError
from proxy.core.osv import Affected, Interner, InvalidAdvisory, parse_record

_CHUNK = 1024 * 1024


class InvalidAdvisoryData(ProxyError):
    """Advisory data that is not stored (or no longer loads): not a zip, a member over a limit,
    no OSV record in it, a stored copy whose bytes changed. ``limit`` names the limit exceeded
    (``max_members``, ``max_member_bytes``, ``max_total_bytes``, ``max_download_bytes``) when
    that is the problem, else None. The copy stored before is kept."""

    def __init__(self, message: str, limit: str | None = None) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Limits:
    """What one copy of the data may make us do. The OSV PyPI export (2025) holds some tens of
    thousands of records, a few hundred MB once decompressed; these leave room for growth."""

    max_members: int = 500_000  # entries in the zip, directories included
    max_member_bytes: int = 16 * 1024**2  # one record, decompressed
    max_total_bytes: int = 2 * 1024**3  # every record, decompressed
    max_download_bytes: int = 1024**3  # the zip itself (a download, a local zip, a packed directory)


@dataclass(slots=True)
class Reading:
    """What a zip held: the index's entries by project, records read and members skipped."""

    by_project: dict[str, list[Affected]] = field(default_factory=dict)
    records: int = 0
    skipped: int = 0
    interner: Interner = field(default_factory=Interner)


def json_files(directory: Path) -> list[Path]:
    """The ``*.json`` files under ``directory``, sorted, hidden directories (.git) skipped."""
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root, name) for name in sorted(files) if name.endswith(".json"))
    return found


def source_fingerprint(path: Path) -> str:
    """Changes when a local source changes: a zip's inode, size and mtime; for a directory, the
    relative name, size and mtime of each ``*.json`` file. FileNotFoundError when it is gone."""
    if not path.is_dir():
        st = path.stat()
        return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
    digest = hashlib.sha256()
    for file in json_files(path):
        st = file.stat()
        digest.update(f"{file.relative_to(path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_zip(path: Path, limits: Limits) -> Reading:
    """Every ``*.json`` member parsed as an OSV record; bad ones skipped and counted. The limits
    are checked on the sizes the zip declares before anything is decompressed, and again on
    what is actually read (a member may understate its size)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = _members_within_limits(archive, limits)
            reading = Reading()
            total = 0
            for info in members:
                with archive.open(info) as member:
                    data = member.read(limits.max_member_bytes + 1)
                total += len(data)
                if len(data) > limits.max_member_bytes or total > limits.max_total_bytes:
                    which = "max_member_bytes" if len(data) > limits.max_member_bytes else "max_total_bytes"
                    raise InvalidAdvisoryData(f"{info.filename} decompresses past {which}", which)
                _add_record(reading, data)
            return reading
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise InvalidAdvisoryData(f"not a readable zip of OSV records: {exc}") from None


def _members_within_limits(archive: zipfile.ZipFile, limits: Limits) -> list[zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise InvalidAdvisoryData(f"the zip has {len(infos)} members, more than max_members "
                                  f"({limits.max_members})", "max_members")
    members = [info for info in infos if not info.is_dir() and info.filename.endswith(".json")]
    for info in members:
        if info.file_size > limits.max_member_bytes:
            raise InvalidAdvisoryData(f"{info.filename} is {info.file_size} bytes decompressed, more than "
                                      f"max_member_bytes ({limits.max_member_bytes})", "max_member_bytes")
    total = sum(info.file_size for info in members)
    if total > limits.max_total_bytes:
        raise InvalidAdvisoryData(f"the zip is {total} bytes decompressed, more than max_total_bytes "
                                  f"({limits.max_total_bytes})", "max_total_bytes")
    return members


def _add_record(reading: Reading, data: bytes) -> None:
    try:
        found = parse_record(json.loads(data), reading.interner)
    except (ValueError, InvalidAdvisory, AttributeError, TypeError):
        reading.skipped += 1
        return
    reading.records += 1
    for name, affected in found:
        reading.by_project.setdefault(name, []).append(affected)


def pack_directory(source: Path, files: list[Path], handle: IO[bytes], limits: Limits) -> None:
    """Write ``files`` (under ``source``) into a zip on ``handle``, named by their path below
    ``source``. InvalidAdvisoryData past max_members or max_member_bytes."""
    if len(files) > limits.max_members:
        raise InvalidAdvisoryData(f"{source} has more than max_members ({limits.max_members}) JSON files",
                                  "max_members")
    # strict_timestamps off: a file dated before 1980 (SOURCE_DATE_EPOCH=0 checkouts) is packed
    # as 1980 rather than refused; only the fingerprint reads mtimes.
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED, compresslevel=1, strict_timestamps=False) as archive:
        for path in files:
            if path.stat().st_size > limits.max_member_bytes:
                raise InvalidAdvisoryData(f"{path} is larger than max_member_bytes ({limits.max_member_bytes})",
                                          "max_member_bytes")
            archive.write(path, path.relative_to(source).as_posix())
