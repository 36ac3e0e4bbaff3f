"""View models of a project's releases and their files, private or as upstream listed them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version

from proxy.core.indexpage import IndexPage
from proxy.core.models import PrivateProject, StoredFile, version_key
from proxy.core.parse import version_from_filename
from proxy.core.render import file_path
from proxy.ui.views import Site, human_bytes, when

if TYPE_CHECKING:
    from proxy.ui.views_policy import PolicyMark

OTHER_FILES = "other files"  # the group of listed files whose names give no version


@dataclass(frozen=True, slots=True)
class FileRow:
    filename: str
    url: str
    kind: str  # "wheel", "sdist" or the extension
    size: str
    uploaded: str
    requires_python: str | None
    sha256: str | None
    yanked_reason: str | None  # None: not yanked; "" yanked without a reason
    uploader: str | None = None  # private files only
    cached: bool | None = None  # upstream files only: whether this server holds a copy


def release_anchor(version: str) -> str:
    """The id of a release on its project page, which ``/pypi/<project>/<version>/`` links to.

    One id per PEP 440 version whatever its spelling: ``1.0``, ``1.0.0`` and ``v1.0`` all give
    ``release-1`` (packaging's canonical form, trailing zeros stripped). Text that is no version
    (the "other files" group) keeps its spelling, with whitespace made ``-`` (an id has none).
    """
    try:
        text = canonicalize_version(Version(version))
    except InvalidVersion:
        text = re.sub(r"\s+", "-", version.strip())
    return f"release-{text}"


@dataclass(frozen=True, slots=True)
class Release:
    version: str
    files: tuple[FileRow, ...]
    current: bool
    policy: PolicyMark | None = None  # upstream releases while a policy is on (``views_policy``)

    @property
    def anchor(self) -> str:
        return release_anchor(self.version)

    @property
    def hidden(self) -> bool:
        """Blocked by the policy: installers do not see it."""
        return self.policy is not None and self.policy.state == "hidden"

    @property
    def yanked(self) -> bool:
        return bool(self.files) and all(f.yanked_reason is not None for f in self.files)


def file_kind(filename: str) -> str:
    """"wheel", "sdist", or the file's extension."""
    if filename.endswith(".whl"):
        return "wheel"
    if filename.endswith((".tar.gz", ".zip", ".tar.bz2", ".tgz")):
        return "sdist"
    return filename.rsplit(".", 1)[-1]


def _private_row(site: Site, project: PrivateProject, stored: StoredFile) -> FileRow:
    return FileRow(
        stored.filename, site.link("/pypi/" + file_path(project.name, stored.filename)), file_kind(stored.filename),
        human_bytes(stored.size), when(stored.upload_time), stored.requires_python, stored.sha256,
        stored.yanked_reason, uploader=stored.uploader,
    )


def private_releases(site: Site, project: PrivateProject, current: str | None) -> tuple[Release, ...]:
    """Every release of a private project, newest first, files by name. O(releases x files)."""
    files = sorted(project.files, key=lambda f: f.filename)
    return tuple(
        Release(version, tuple(_private_row(site, project, f) for f in files if f.version == version),
                version == current)
        for version in reversed(project.versions())
    )


def cached_releases(site: Site, page: IndexPage, cached_files: frozenset[str]) -> tuple[Release, ...]:
    """An upstream listing grouped by the version in each filename, newest first; files whose
    names give no version last, as ``OTHER_FILES``. None is current (see ``with_current``)."""
    grouped: dict[str, list[FileRow]] = {}
    for listed in sorted(page.files, key=lambda f: f.filename):
        version = version_from_filename(listed.filename, page.name) or OTHER_FILES
        grouped.setdefault(version, []).append(FileRow(
            listed.filename, site.link("/pypi/" + file_path(page.name, listed.filename)), file_kind(listed.filename),
            human_bytes(listed.size), when(listed.upload_time), listed.requires_python,
            listed.hashes.get("sha256"), listed.yanked_reason, cached=listed.filename in cached_files,
        ))
    versions = sorted((v for v in grouped if v != OTHER_FILES), key=version_key, reverse=True)
    if OTHER_FILES in grouped:
        versions.append(OTHER_FILES)
    return tuple(Release(v, tuple(grouped[v]), False) for v in versions)


def newest_installable(releases: Sequence[Release]) -> str | None:
    """Newest release with a file not yanked, finals before pre-releases (as pip chooses); never
    one the policy hides (installers do not see it)."""
    usable = [r.version for r in releases if not r.yanked and not r.hidden and r.version != OTHER_FILES]
    finals = [v for v in usable if _is_final(v)]
    candidates = finals or usable
    return candidates[0] if candidates else None


def _is_final(version: str) -> bool:
    try:
        return not Version(version).is_prerelease
    except InvalidVersion:
        return False


def with_current(releases: Sequence[Release], current: str | None) -> tuple[Release, ...]:
    """``releases`` with ``current`` (a version, or None for none) marked as the current one."""
    return tuple(replace(r, current=r.version == current) for r in releases)
