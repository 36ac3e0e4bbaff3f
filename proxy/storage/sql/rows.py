"""Rows of the SQL model to and from the core's frozen models (StoredFile, ReleaseInfo,
PrivateProject), and a distribution's identity as the columns its UNIQUE constraint covers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_version, parse_wheel_filename
from packaging.version import InvalidVersion, Version
from sqlalchemy import Row

from proxy.core.models import PrivateProject, ReleaseInfo, StoredFile

_FILE_FIELDS = tuple(f.name for f in fields(StoredFile))
_RELEASE_FIELDS = tuple(f.name for f in fields(ReleaseInfo))
_LIST_FIELDS = ("classifiers", "requires_dist", "provides_extra", "platform", "dynamic", "license_files")


def canonical_version(text: str) -> str:
    """One spelling per PEP 440 version: "1.0", "1.0.0" and "01.0" are all "1" (the equality
    ``proxy.core.models.version_key`` sorts by); a version PEP 440 cannot parse stays as written."""
    try:
        Version(text)
    except InvalidVersion:
        return text
    return canonicalize_version(text, strip_trailing_zero=True)


def identity_columns(stored: StoredFile) -> dict[str, str]:
    """``StoredFile.identity`` as column values: two files of a project have equal columns
    exactly when their identities are equal (STANDARDS H1: a wheel's version, build tag and tag
    set; an sdist's version alone; any other file its filename)."""
    version = canonical_version(stored.version)
    if stored.packagetype == "sdist":
        return _identity("sdist", version)
    try:
        if not stored.filename.endswith(".whl"):
            raise InvalidWheelFilename(stored.filename)
        _name, _version, build, tags = parse_wheel_filename(stored.filename)
    except InvalidWheelFilename:  # never accepted on upload: unique by its filename alone
        return _identity("file", "", tag_set=stored.filename)
    # packaging's build tag is (number, rest) and its number greedy: the text is unambiguous.
    build_tag = f"{build[0]}{build[1]}" if build else ""
    return _identity("bdist_wheel", version, build_tag, ".".join(sorted(str(tag) for tag in tags)))


def _identity(kind: str, version: str, build_tag: str = "", tag_set: str = "") -> dict[str, str]:
    return {"identity_kind": kind, "canonical_version": version, "build_tag": build_tag, "tag_set": tag_set}


def file_values(stored: StoredFile) -> dict[str, Any]:
    """The columns of ``files`` for one stored file, project excepted."""
    return {**{name: getattr(stored, name) for name in _FILE_FIELDS}, **identity_columns(stored)}


def release_values(info: ReleaseInfo) -> dict[str, Any]:
    """The columns of ``releases`` for one release, project excepted (lists as JSON arrays)."""
    values = {name: getattr(info, name) for name in _RELEASE_FIELDS}
    for name in _LIST_FIELDS:
        values[name] = list(values[name])
    values["project_urls"] = [list(pair) for pair in info.project_urls]
    values["canonical_version"] = canonical_version(info.version)
    return values


def stored_file(row: Row[Any]) -> StoredFile:
    mapping = row._mapping
    return StoredFile(**{name: mapping[name] for name in _FILE_FIELDS})


def release_info(row: Row[Any]) -> ReleaseInfo:
    mapping = row._mapping
    values = {name: mapping[name] for name in _RELEASE_FIELDS}
    for name in _LIST_FIELDS:
        values[name] = tuple(values[name])
    values["project_urls"] = tuple((label, url) for label, url in values["project_urls"])
    return ReleaseInfo(**values)


def private_project(project: Row[Any], files: Sequence[Row[Any]], releases: Sequence[Row[Any]]) -> PrivateProject:
    """A project from its row and its files' and releases' rows (each in upload order)."""
    return PrivateProject(
        name=project.name, display_name=project.display_name, serial=project.serial,
        files=tuple(stored_file(row) for row in files),
        releases=tuple(release_info(row) for row in releases),
    )
