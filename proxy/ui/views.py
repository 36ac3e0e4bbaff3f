"""The web interface's view models: plain data for its templates, built by pure functions."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote, urlencode, urlsplit

from markupsafe import Markup
from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version

from proxy.core.jsonapi import current_version, from_private
from proxy.core.models import IndexPage, PrivateProject, ReleaseInfo, StoredFile, version_key
from proxy.core.names import matches_any, normalize
from proxy.core.parse import version_from_filename
from proxy.core.render import file_path
from proxy.ui import readme

PER_PAGE = 50
PRIVATE, CACHED, RESERVED = "private", "cached", "reserved"
OTHER_FILES = "other files"  # the group of listed files whose names give no version


@dataclass(frozen=True, slots=True)
class Site:
    """Where clients reach this server: ``base_url`` for snippets, ``root`` to prefix links."""

    base_url: str  # absolute, no trailing slash
    root: str  # the path part of base_url: "" or "/prefix"

    @property
    def index_url(self) -> str:
        return f"{self.base_url}/pypi/simple/"

    @property
    def upload_url(self) -> str:
        return f"{self.base_url}/pypi"

    def link(self, path: str) -> str:
        return self.root + path

    def project_link(self, name: str) -> str:
        return self.link(f"/-/projects/{quote(name)}/")


def site_for(public_url: str | None, scheme: str, host: str) -> Site:
    """``[server] public_url`` when configured (behind a reverse proxy), else the request's own."""
    base = (public_url or f"{scheme}://{host}").rstrip("/")
    return Site(base, urlsplit(base).path.rstrip("/"))


def human_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def when(moment: datetime | float | None) -> str:
    """UTC, to the second: "2024-05-01 12:34:56 UTC"; "-" when unknown."""
    if moment is None:
        return "-"
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(moment: float | None, now: float) -> str:
    if moment is None:
        return ""
    seconds = max(0, int(now - moment))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def percent(part: int | None, whole: int | None) -> int | None:
    if part is None or not whole:
        return None
    return min(100, round(100 * part / whole))


# Home ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Snippet:
    tool: str
    where: str  # the file or context it goes in
    text: str


def snippets(site: Site) -> tuple[Snippet, ...]:
    """Set-up for each client, as the README documents them, with this server's URL."""
    index, upload = site.index_url, site.upload_url
    return (
        Snippet("pip", "pip.conf (~/.config/pip/pip.conf)", f"[global]\nindex-url = {index}\n"),
        Snippet("pip", "one shell", f"export PIP_INDEX_URL={index}\n"),
        Snippet("uv", "uv.toml (~/.config/uv/uv.toml)", f'[[index]]\nurl = "{index}"\ndefault = true\n'),
        Snippet("uv", "one shell", f"export UV_DEFAULT_INDEX={index}\n"),
        Snippet("poetry", "a project's primary source", f"poetry source add --priority=primary internal {index}\n"),
        Snippet("pdm", "pyproject.toml", f'[[tool.pdm.source]]\nname = "pypi"\nurl = "{index}"\n'),
        Snippet("twine", "~/.pypirc, then twine upload -r internal dist/*",
                "[distutils]\nindex-servers = internal\n\n[internal]\n"
                f"repository = {upload}\nusername = __token__\npassword = pypi-proxy-TOKEN\n"),
        Snippet("twine", "directly", f'twine upload --repository-url {upload} -u __token__ -p "$TOKEN" dist/*\n'),
    )


@dataclass(frozen=True, slots=True)
class HomeView:
    site: Site
    private_projects: int
    cached_projects: int
    cache_size: str
    cache_limit: str | None
    upstream_url: str | None  # None: upstream is off
    snippets: tuple[Snippet, ...]


def home_view(site: Site, private_projects: int, cached_projects: int, cache_bytes: int,
              cache_limit: int | None, upstream_url: str | None) -> HomeView:
    return HomeView(site, private_projects, cached_projects, human_bytes(cache_bytes),
                    human_bytes(cache_limit) if cache_limit is not None else None, upstream_url, snippets(site))


# The project list ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Listed:
    name: str  # as displayed
    key: str  # normalised (PEP 503)
    marker: str  # PRIVATE, CACHED or RESERVED
    url: str


def listed_projects(site: Site, private: Iterable[str], cached: Iterable[str],
                    reserved: Sequence[str]) -> list[Listed]:
    """Private projects (private wins over everything), then cached ones; a cached name that is
    now reserved is marked so (it is no longer served). Sorted by normalised name."""
    found: dict[str, Listed] = {}
    for name in private:
        key = normalize(name)
        found.setdefault(key, Listed(name, key, PRIVATE, site.project_link(key)))
    for name in cached:
        key = normalize(name)
        marker = RESERVED if matches_any(key, reserved) else CACHED
        found.setdefault(key, Listed(name, key, marker, site.project_link(key)))
    return [found[key] for key in sorted(found)]


def search(projects: Iterable[Listed], query: str) -> list[Listed]:
    """Substring match on PEP 503 normalised names: "My_Pkg" finds "my-pkg"."""
    needle = normalize(query.strip()) if query.strip() else ""
    return [p for p in projects if needle in p.key]


def page_number(text: str | None) -> int:
    """The ``page`` query parameter; anything but a positive integer is page 1."""
    return int(text) if text and text.isdigit() and int(text) > 0 else 1


@dataclass(frozen=True, slots=True)
class ProjectsView:
    site: Site
    query: str
    projects: tuple[Listed, ...]
    total: int
    page: int
    pages: int
    first: int  # 1-based position of the first shown
    prev_url: str | None
    next_url: str | None
    reserved: tuple[str, ...]
    query_reserved: bool  # the query names a reserved project that has no release yet


def projects_view(site: Site, everything: Sequence[Listed], query: str, page: int,
                  reserved: Sequence[str], per_page: int = PER_PAGE) -> ProjectsView:
    found = search(everything, query)
    pages = max(1, math.ceil(len(found) / per_page))
    page = min(page, pages)
    start = (page - 1) * per_page

    def url(number: int) -> str:
        params = {**({"q": query} if query else {}), **({"page": str(number)} if number > 1 else {})}
        return site.link("/-/projects") + (f"?{urlencode(params)}" if params else "")

    key = normalize(query.strip()) if query.strip() else ""
    query_reserved = bool(key) and matches_any(key, reserved) and all(p.key != key for p in found)
    return ProjectsView(
        site, query, tuple(found[start:start + per_page]), len(found), page, pages, start + 1,
        url(page - 1) if page > 1 else None, url(page + 1) if page < pages else None,
        tuple(reserved), query_reserved,
    )


# One project -----------------------------------------------------------------------------------

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

    @property
    def anchor(self) -> str:
        return release_anchor(self.version)

    @property
    def yanked(self) -> bool:
        return bool(self.files) and all(f.yanked_reason is not None for f in self.files)


@dataclass(frozen=True, slots=True)
class ProjectView:
    site: Site
    name: str  # normalised
    display_name: str
    marker: str  # PRIVATE or CACHED (RESERVED: cached but no longer served)
    version: str | None  # the one the install line names
    install_line: str | None
    summary: str
    description: Markup
    releases: tuple[Release, ...]  # newest first
    facts: tuple[tuple[str, str], ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    requires: tuple[str, ...] = ()
    description_note: str = ""  # why the description is shown as plain text, when it is


def _kind(filename: str) -> str:
    if filename.endswith(".whl"):
        return "wheel"
    if filename.endswith((".tar.gz", ".zip", ".tar.bz2", ".tgz")):
        return "sdist"
    return filename.rsplit(".", 1)[-1]


def _install_line(site: Site, name: str, version: str | None) -> str | None:
    return f"pip install {name}=={version} --index-url {site.index_url}" if version else None


def _safe_links(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Project URLs from metadata, only http(s): a ``javascript:`` URL must never become a link."""
    return tuple((label, url) for label, url in pairs if urlsplit(url.strip()).scheme in ("http", "https"))


def _private_row(site: Site, project: PrivateProject, stored: StoredFile) -> FileRow:
    return FileRow(
        stored.filename, site.link("/pypi/" + file_path(project.name, stored.filename)), _kind(stored.filename),
        human_bytes(stored.size), when(stored.upload_time), stored.requires_python, stored.sha256,
        stored.yanked_reason, uploader=stored.uploader,
    )


PLAIN_NOTES = {
    readme.TOO_LARGE: "Shown as plain text: this description is longer than this server renders.",
    readme.TOO_SLOW: "Shown as plain text: rendering this description took longer than this server allows.",
    readme.TOO_MUCH_MEMORY: ("Shown as plain text: rendering this description needed more memory than this "
                             "server allows."),
    readme.NOT_READY: "Shown as plain text for now: this description is being rendered.",
}


def current_release(project: PrivateProject) -> ReleaseInfo | None:
    """The release whose metadata and description the project page shows (F2's choice).
    O(files): call it off the event loop."""
    chosen = current_version(from_private(project))
    return project.release(chosen) if chosen else None


def private_project_view(site: Site, project: PrivateProject, description: readme.Shown) -> ProjectView:
    """A private project: every release newest first, the current release's metadata, and its
    description as ``description`` says (rendered by ``services.descriptions``, or plain).
    O(files + description): call it off the event loop."""
    chosen = current_version(from_private(project))
    releases = tuple(
        Release(version, tuple(_private_row(site, project, f) for f in sorted(project.files, key=lambda f: f.filename)
                               if f.version == version), version == chosen)
        for version in reversed(project.versions())
    )
    info = project.release(chosen) if chosen else None
    facts = []
    if info is not None:
        facts = [(label, value) for label, value in (
            ("Requires Python", info.requires_python), ("License", info.license_expression or info.license),
            ("Author", info.author or info.author_email), ("Maintainer", info.maintainer or info.maintainer_email),
            ("Keywords", info.keywords),
        ) if value]
    links = _safe_links([("Home page", info.home_page or ""), *info.project_urls] if info else [])
    return ProjectView(
        site, project.name, project.display_name, PRIVATE, chosen, _install_line(site, project.display_name, chosen),
        info.summary if info else "", description.markup(info.description) if info else Markup(""),
        releases, tuple(facts), links, info.requires_dist if info else (),
        PLAIN_NOTES.get(description.plain_reason, "") if info and info.description.strip() else "",
    )


def _newest_installable(releases: Sequence[Release]) -> str | None:
    """Newest release with a file not yanked, finals before pre-releases (as pip chooses)."""
    usable = [r.version for r in releases if not r.yanked and r.version != OTHER_FILES]
    finals = [v for v in usable if _is_final(v)]
    candidates = finals or usable
    return candidates[0] if candidates else None


def _is_final(version: str) -> bool:
    try:
        return not Version(version).is_prerelease
    except InvalidVersion:
        return False


def cached_project_view(site: Site, page: IndexPage, cached_files: frozenset[str], reserved: bool) -> ProjectView:
    """An upstream project as this server last cached its listing (nothing is fetched for it)."""
    grouped: dict[str, list[FileRow]] = {}
    for listed in sorted(page.files, key=lambda f: f.filename):
        version = version_from_filename(listed.filename, page.name) or OTHER_FILES
        grouped.setdefault(version, []).append(FileRow(
            listed.filename, site.link("/pypi/" + file_path(page.name, listed.filename)), _kind(listed.filename),
            human_bytes(listed.size), when(listed.upload_time), listed.requires_python,
            listed.hashes.get("sha256"), listed.yanked_reason, cached=listed.filename in cached_files,
        ))
    versions = sorted((v for v in grouped if v != OTHER_FILES), key=version_key, reverse=True)
    releases = [Release(v, tuple(grouped[v]), False) for v in versions]
    if OTHER_FILES in grouped:
        releases.append(Release(OTHER_FILES, tuple(grouped[OTHER_FILES]), False))
    chosen = None if reserved else _newest_installable(releases)
    releases = [Release(r.version, r.files, r.version == chosen) for r in releases]
    return ProjectView(
        site, page.name, page.name, RESERVED if reserved else CACHED, chosen,
        _install_line(site, page.name, chosen), "", Markup(""), tuple(releases),
    )


@dataclass(frozen=True, slots=True)
class NotFoundView:
    site: Site
    name: str
    reason: str


def not_found_view(site: Site, name: str, *, reserved: bool, upstream_enabled: bool,
                   valid: bool = True) -> NotFoundView:
    if not valid:
        reason = ("This is not a valid project name (ASCII letters, digits, '.', '-' and '_', starting and "
                  "ending with a letter or digit): no project can have it.")
    elif reserved:
        reason = "This name is reserved for private use: it has no release yet and is never looked up upstream."
    elif upstream_enabled:
        reason = ("No private project has this name, and its upstream listing is not cached. "
                  "It is fetched from upstream the first time a client asks the index for it.")
    else:
        reason = "No private project has this name."
    return NotFoundView(site, name, reason)


# Help ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HelpView:
    """The help page: static text; the site only shapes its links."""

    site: Site


def help_view(site: Site) -> HelpView:
    return HelpView(site)
