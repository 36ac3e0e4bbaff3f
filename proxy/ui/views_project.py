"""View models of one project's page (private, or cached from upstream) and of a name with none."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from markupsafe import Markup

from proxy.core.indexpage import IndexPage
from proxy.core.jsonapi import current_version, from_private
from proxy.core.models import PrivateProject, ReleaseInfo
from proxy.repository.policy import Decided
from proxy.ui import readme
from proxy.ui.views import CACHED, PRIVATE, RESERVED, Site
from proxy.ui.views_policy import with_policy
from proxy.ui.views_releases import Release, cached_releases, newest_installable, private_releases, with_current


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


def _install_line(site: Site, name: str, version: str | None) -> str | None:
    return f"pip install {name}=={version} --index-url {site.index_url}" if version else None


def _safe_links(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Project URLs from metadata, only http(s): a ``javascript:`` URL must never become a link."""
    return tuple((label, url) for label, url in pairs if urlsplit(url.strip()).scheme in ("http", "https"))


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


def _facts(info: ReleaseInfo) -> tuple[tuple[str, str], ...]:
    return tuple((label, value) for label, value in (
        ("Requires Python", info.requires_python), ("License", info.license_expression or info.license),
        ("Author", info.author or info.author_email), ("Maintainer", info.maintainer or info.maintainer_email),
        ("Keywords", info.keywords),
    ) if value)


def private_project_view(site: Site, project: PrivateProject, description: readme.Shown) -> ProjectView:
    """A private project: every release newest first, the current release's metadata, and its
    description as ``description`` says (rendered by ``services.descriptions``, or plain).
    O(files + description): call it off the event loop."""
    chosen = current_version(from_private(project))
    releases = private_releases(site, project, chosen)
    info = project.release(chosen) if chosen else None
    if info is None:
        return ProjectView(site, project.name, project.display_name, PRIVATE, chosen,
                           _install_line(site, project.display_name, chosen), "", Markup(""), releases)
    return ProjectView(
        site, project.name, project.display_name, PRIVATE, chosen, _install_line(site, project.display_name, chosen),
        info.summary, description.markup(info.description), releases, _facts(info),
        _safe_links([("Home page", info.home_page or ""), *info.project_urls]), info.requires_dist,
        PLAIN_NOTES.get(description.plain_reason, "") if info.description.strip() else "",
    )


def cached_project_view(site: Site, page: IndexPage, cached_files: frozenset[str], reserved: bool,
                        decided: Decided | None = None) -> ProjectView:
    """An upstream project as this server last cached its listing (nothing is fetched for it);
    with the policy's ``decided`` (about every release of ``page``, unfiltered), each release is
    marked served, warned or hidden, and the install line names a served one."""
    releases = cached_releases(site, page, cached_files)
    if decided is not None:
        releases = with_policy(site, page.name, releases, decided)
    chosen = None if reserved else newest_installable(releases)
    return ProjectView(
        site, page.name, page.name, RESERVED if reserved else CACHED, chosen,
        _install_line(site, page.name, chosen), "", Markup(""), with_current(releases, chosen),
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
