"""PyPI's JSON API documents (``/pypi/<project>[/<version>]/json``) for private and upstream projects.

Pure: one document shape (warehouse's ``legacy/api/json.py``, STANDARDS F1-F3) built from
``ApiFile`` rows, whatever their source: a private project's stored files, or the files of an
upstream project's cached simple page (grouped into releases by their filenames). ``info`` comes
from the chosen release's core metadata (``ReleaseInfo``); file URLs point at this server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from packaging.version import InvalidVersion, Version

from proxy.core.indexpage import IndexFile, IndexPage
from proxy.core.models import PrivateProject, ReleaseInfo, StoredFile, version_key
from proxy.core.names import guess_packagetype
from proxy.core.parse import version_from_filename
from proxy.core.render import file_path
from proxy.core.timestamps import iso_z


@dataclass(frozen=True, slots=True)
class ApiFile:
    """One file as the JSON API lists it. Digests and sizes are what is known (None when not)."""

    filename: str
    packagetype: str
    python_version: str
    requires_python: str | None
    size: int | None
    upload_time: datetime | None
    digests: Mapping[str, str | None]  # md5, sha256, blake2b_256
    yanked_reason: str | None  # None: not yanked

    @property
    def yanked(self) -> bool:
        return self.yanked_reason is not None


@dataclass(frozen=True, slots=True)
class ApiProject:
    """What a JSON API document is made of: releases (PEP 440 order, oldest first) and their files."""

    name: str  # normalised: file URLs
    display_name: str
    releases: Mapping[str, Sequence[ApiFile]]
    serial: int

    def release(self, version: str) -> str | None:
        """The release ``version`` names, compared as PEP 440 versions ("1.0.0" finds "1.0")."""
        key = version_key(version)
        return next((v for v in self.releases if version_key(v) == key), None)


def from_private(project: PrivateProject) -> ApiProject:
    releases: dict[str, list[ApiFile]] = {v: [] for v in project.versions()}
    for stored in project.files:
        releases[stored.version].append(_stored_file(stored))
    return ApiProject(project.name, project.display_name, releases, project.serial)


def _stored_file(file: StoredFile) -> ApiFile:
    return ApiFile(file.filename, file.packagetype, file.python_version, file.requires_python, file.size,
                   file.upload_time, {"md5": file.md5, "sha256": file.sha256, "blake2b_256": file.blake2_256},
                   file.yanked_reason)


def from_upstream(page: IndexPage) -> ApiProject:
    """An upstream project's releases from its simple page: every version it lists (PEP 700), with
    the files whose names give that version; files whose names give none are left out."""
    releases: dict[str, list[ApiFile]] = {v: [] for v in page.versions}
    by_key = {version_key(v): v for v in releases}
    for listed in page.files:
        version = version_from_filename(listed.filename, page.name)
        if version is None:
            continue
        chosen = by_key.setdefault(version_key(version), version)
        releases.setdefault(chosen, []).append(_listed_file(listed))
    ordered = {v: releases[v] for v in sorted(releases, key=version_key)}
    return ApiProject(page.name, page.name, ordered, page.last_serial or 0)


def _listed_file(file: IndexFile) -> ApiFile:
    packagetype = guess_packagetype(file.filename)
    python = "source" if packagetype == "sdist" else _python_tag(file.filename)
    digests = {"md5": file.hashes.get("md5"), "sha256": file.hashes.get("sha256"),
               "blake2b_256": file.hashes.get("blake2b_256")}
    return ApiFile(file.filename, packagetype, python, file.requires_python, file.size, file.upload_time,
                   digests, file.yanked_reason)


def _python_tag(filename: str) -> str:
    parts = filename.removesuffix(".whl").split("-")
    return parts[-3] if filename.endswith(".whl") and len(parts) >= 5 else ""


def _is_final(version: str) -> bool:
    try:
        return not Version(version).is_prerelease
    except InvalidVersion:
        return False


def current_version(project: ApiProject) -> str | None:
    """Newest non-yanked final release, else newest non-yanked, else newest (STANDARDS F2)."""
    versions = list(project.releases)
    unyanked = [v for v in versions if any(not f.yanked for f in project.releases[v])]
    finals = [v for v in unyanked if _is_final(v)]
    for candidates in (finals, unyanked, versions):
        if candidates:
            return candidates[-1]
    return None


def metadata_source(project: ApiProject, version: str, offered: Sequence[str]) -> str | None:
    """The file of ``version`` whose core metadata gives ``info``: a wheel whose metadata file is
    ``offered`` (filenames), the first by name; None when the release has none."""
    wheels = sorted(f.filename for f in project.releases.get(version, ()) if f.filename in offered)
    return wheels[0] if wheels else None


def _api_file(project: ApiProject, file: ApiFile, base_url: str) -> dict[str, Any]:
    return {
        "comment_text": "",
        "digests": dict(file.digests),
        "downloads": -1,
        "filename": file.filename,
        "has_sig": False,
        "md5_digest": file.digests.get("md5"),
        "packagetype": file.packagetype,
        "python_version": file.python_version,
        "requires_python": file.requires_python,
        "size": file.size,
        "upload_time": file.upload_time.strftime("%Y-%m-%dT%H:%M:%S") if file.upload_time else None,
        "upload_time_iso_8601": iso_z(file.upload_time) if file.upload_time else None,
        "url": f"{base_url}/{file_path(project.name, file.filename)}",
        "yanked": file.yanked,
        "yanked_reason": file.yanked_reason,
    }


def _api_info(release: ReleaseInfo | None, version: str | None) -> dict[str, Any]:
    """The metadata part of ``info``, shaped as PyPI's: every key present, lists and dicts None
    when empty, ``platform`` its first value."""
    info = release or ReleaseInfo(version or "")
    return {
        "version": version,
        "summary": info.summary,
        "description": info.description,
        "description_content_type": info.description_content_type,
        "keywords": info.keywords,
        "license": info.license,
        "license_expression": info.license_expression,
        "license_files": list(info.license_files) or None,
        "classifiers": list(info.classifiers),
        "author": info.author,
        "author_email": info.author_email,
        "maintainer": info.maintainer,
        "maintainer_email": info.maintainer_email,
        "requires_python": info.requires_python,
        "platform": info.platform[0] if info.platform else None,
        "home_page": info.home_page,
        "download_url": info.download_url,
        "project_urls": dict(info.project_urls) or None,
        "requires_dist": list(info.requires_dist) or None,
        "provides_extra": list(info.provides_extra) or None,
        "dynamic": list(info.dynamic) or None,
    }


def document(project: ApiProject, chosen: str | None, release: ReleaseInfo | None, base_url: str,
             with_releases: bool) -> dict[str, Any]:
    """The JSON API document; ``base_url`` is where ``/pypi`` is (``https://host/prefix/pypi``, or the
    path ``/pypi``: never from a Host header, issue 12 L9). ``chosen`` is the release of
    ``info`` and ``urls`` (the requested one, or ``current_version``); ``with_releases`` for the
    project document (``/pypi/<p>/json``), not the release one."""
    chosen_files = project.releases.get(chosen or "", ())
    info = _api_info(release, chosen)
    if release is None and chosen_files:  # no metadata file: what the listing says
        info["requires_python"] = next((f.requires_python for f in chosen_files if f.requires_python), None)
    # A release counts as yanked when all its files are (PEP 592 yanks files, PyPI releases).
    yanked = bool(chosen_files) and all(f.yanked for f in chosen_files)
    yanked_reason = next((f.yanked_reason for f in chosen_files if f.yanked_reason), None) if yanked else None
    project_url = f"{base_url}/{quote(project.name)}/"
    info.update({
        "name": project.display_name,
        "package_url": project_url,
        "project_url": project_url,
        "release_url": f"{project_url}{chosen}/",
        "bugtrack_url": None,
        "docs_url": None,
        "downloads": {"last_day": -1, "last_month": -1, "last_week": -1},
        "yanked": yanked,
        "yanked_reason": yanked_reason,
    })
    result: dict[str, Any] = {
        "info": info,
        "last_serial": project.serial,
        "urls": [_api_file(project, f, base_url) for f in chosen_files],
        "vulnerabilities": [],
    }
    if with_releases:
        result["releases"] = {v: [_api_file(project, f, base_url) for f in files]
                              for v, files in project.releases.items()}
    return result


def private_document(project: PrivateProject, base_url: str, version: str | None = None) -> dict[str, Any]:
    """A private project's document; ``version`` must name one of its releases (PEP 440 equality)."""
    api = from_private(project)
    chosen = api.release(version) if version else current_version(api)
    release = project.release(chosen) if chosen else None
    return document(api, chosen, release, base_url, with_releases=version is None)
