"""Frozen data shared by every layer: stored private files, releases and projects, and the
order of versions. The index page model is ``proxy.core.indexpage``, moments
``proxy.core.timestamps``."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from proxy.core.timestamps import iso_z, parse_iso


@functools.lru_cache(maxsize=65536)
def version_key(text: str) -> tuple[int, Any]:
    """Sort key ordering PEP 440 versions correctly and any invalid legacy string first.

    The key is packaging's own comparison tuple (``Version._key``, what Version's operators
    compare) rather than the Version: sorting 3,000 versions then compares tuples in C, several
    times faster. Cached: the same versions are sorted again on every change of a project.
    """
    try:
        version = Version(text)
    except InvalidVersion:
        return (0, text)
    return (1, getattr(version, "_key", version))


@functools.lru_cache(maxsize=65536)
def _wheel_identity(filename: str) -> tuple[Any, ...] | None:
    """Build tag and tag set of a wheel filename (``py2.py3`` and ``py3.py2`` are one set)."""
    try:
        _name, _version, build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    return (build, tags)


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One private distribution file as recorded in its project's index."""

    filename: str
    version: str
    packagetype: str
    python_version: str
    size: int
    sha256: str
    md5: str
    blake2_256: str
    upload_time: datetime
    uploader: str
    requires_python: str | None = None
    metadata_sha256: str | None = None
    yanked_reason: str | None = None  # None: not yanked; "" yanked without a reason

    @property
    def yanked(self) -> bool:
        return self.yanked_reason is not None

    @property
    def identity(self) -> tuple[Any, ...]:
        """What makes two files of a project the same distribution (STANDARDS H1, as warehouse):
        a wheel's PEP 440 version, build tag and tag set; an sdist's version alone, so a release
        has at most one sdist. Filenames that say neither (never accepted on upload) are unique."""
        version = version_key(self.version)  # "1.0", "1.0.0" and "01.0" are one version
        if self.packagetype == "sdist":
            return ("sdist", version)
        wheel = _wheel_identity(self.filename) if self.filename.endswith(".whl") else None
        if wheel is None:
            return ("file", self.filename)
        return ("bdist_wheel", version, *wheel)

    def to_json(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "version": self.version,
            "packagetype": self.packagetype,
            "python_version": self.python_version,
            "size": self.size,
            "sha256": self.sha256,
            "md5": self.md5,
            "blake2_256": self.blake2_256,
            "upload_time": iso_z(self.upload_time),
            "uploader": self.uploader,
            "requires_python": self.requires_python,
            "metadata_sha256": self.metadata_sha256,
            "yanked_reason": self.yanked_reason,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredFile:
        return cls(**{**data, "upload_time": parse_iso(data["upload_time"])})


_LIST_FIELDS = ("classifiers", "requires_dist", "provides_extra", "platform", "dynamic", "license_files")


@dataclass(frozen=True, slots=True)
class ReleaseInfo:
    """Core metadata of one version, as read from its first uploaded file (for the JSON API).

    Text is kept exactly as the archive's metadata has it (decoded as UTF-8). Fields added later
    have defaults, so ``project.json`` files written by older versions still load.
    """

    version: str
    summary: str = ""
    description: str = ""
    description_content_type: str | None = None
    author: str | None = None
    author_email: str | None = None
    maintainer: str | None = None
    maintainer_email: str | None = None
    license: str | None = None
    license_expression: str | None = None
    keywords: str | None = None
    home_page: str | None = None
    download_url: str | None = None
    requires_python: str | None = None
    classifiers: tuple[str, ...] = ()
    requires_dist: tuple[str, ...] = ()
    provides_extra: tuple[str, ...] = ()
    project_urls: tuple[tuple[str, str], ...] = ()
    platform: tuple[str, ...] = ()
    dynamic: tuple[str, ...] = ()  # core metadata 2.2 (PEP 643), title-cased as PyPI shows them
    license_files: tuple[str, ...] = ()  # core metadata 2.4 (PEP 639)

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in _LIST_FIELDS:
            data[name] = list(data[name])
        data["project_urls"] = [list(pair) for pair in self.project_urls]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReleaseInfo:
        # Keys this version does not know (written by a newer one) are left out, not an error.
        data = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        for name in _LIST_FIELDS:
            data[name] = tuple(data.get(name) or ())
        data["project_urls"] = tuple((label, url) for label, url in data.get("project_urls") or ())
        return cls(**data)


@dataclass(frozen=True, slots=True)
class PrivateProject:
    """Everything stored for one private project: the source of its index page and JSON API."""

    name: str  # normalised
    display_name: str
    files: tuple[StoredFile, ...] = ()
    releases: tuple[ReleaseInfo, ...] = ()
    serial: int = 0

    def file(self, filename: str) -> StoredFile | None:
        return next((f for f in self.files if f.filename == filename), None)

    def duplicate_of(self, new: StoredFile) -> StoredFile | None:
        """The stored file that ``new`` would duplicate, if any: the one with its filename, else
        the same distribution under another filename (STANDARDS H1), else the same bytes under
        another filename (warehouse refuses a known digest too). A file equal in filename and
        bytes is the caller's no-op re-upload (E4)."""
        same_name = self.file(new.filename)
        if same_name is not None:
            return same_name
        identity = new.identity
        twin = next((f for f in self.files if f.identity == identity), None)
        return twin or next((f for f in self.files if f.sha256 == new.sha256), None)

    def release(self, version: str) -> ReleaseInfo | None:
        """The release of ``version``, compared as PEP 440 versions ("1.0" finds "1.0.0")."""
        key = version_key(version)
        return next((r for r in self.releases if version_key(r.version) == key), None)

    def versions(self) -> list[str]:
        """Every version with a release or a file, oldest first by PEP 440."""
        found = {r.version for r in self.releases} | {f.version for f in self.files}
        return sorted(found, key=version_key)

    def with_file(self, stored: StoredFile, info: ReleaseInfo) -> PrivateProject:
        """Add a file; "1.0" and "1.0.0" are one release (PEP 440), named as first uploaded."""
        same = next((r for r in self.releases if version_key(r.version) == version_key(stored.version)), None)
        if same is not None:
            stored = replace(stored, version=same.version)
            releases = self.releases
        else:
            releases = (*self.releases, info)
        return replace(self, files=(*self.files, stored), releases=releases, serial=self.serial + 1)

    def without_files(self, filenames: set[str]) -> PrivateProject:
        files = tuple(f for f in self.files if f.filename not in filenames)
        kept_versions = {f.version for f in files}
        releases = tuple(r for r in self.releases if r.version in kept_versions)
        return replace(self, files=files, releases=releases, serial=self.serial + 1)

    def with_yank(self, filenames: set[str], reason: str | None) -> PrivateProject:
        files = tuple(
            replace(f, yanked_reason=reason) if f.filename in filenames else f for f in self.files
        )
        return replace(self, files=files, serial=self.serial + 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "serial": self.serial,
            "files": [f.to_json() for f in self.files],
            "releases": [r.to_json() for r in self.releases],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PrivateProject:
        return cls(
            name=data["name"],
            display_name=data["display_name"],
            serial=data.get("serial", 0),
            files=tuple(StoredFile.from_json(f) for f in data.get("files", ())),
            releases=tuple(ReleaseInfo.from_json(r) for r in data.get("releases", ())),
        )
