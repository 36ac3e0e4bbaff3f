"""The web interface (HTML for people): gather, build a view model, render it off the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from proxy.core.errors import ProjectNotFound
from proxy.core.indexpage import IndexPage
from proxy.core.models import PrivateProject
from proxy.core.names import is_valid_project_name, matches_any, normalize, validate_project_name
from proxy.repository.policy import Decided
from proxy.storage.upstream_files import Key
from proxy.ui import browse, views, views_home, views_list
from proxy.ui import status as uistatus
from proxy.ui.explain import explain_view
from proxy.ui.readme import RENDERED_EMPTY, Shown
from proxy.ui.views_project import (
    ProjectView,
    cached_project_view,
    current_release,
    not_found_view,
    private_project_view,
)
from proxy.ui.views_releases import release_anchor
from proxy.web import redirects
from proxy.web.keys import CATALOG, DESCRIPTIONS, EXECUTOR, SETTINGS, TEMPLATES
from proxy.web.middlewares import UI_POLICY
from proxy.web.ops import advisory_figures, cache_figures, feed_status, storage_error

HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": UI_POLICY}


async def _respond(request: web.Request, template: str, build: Callable[..., Any], *args: Any,
                   status: int = 200, **kwargs: Any) -> web.Response:
    """Build the view model and render its template, both in the executor: a cached project
    of 3,000 files takes ~200 ms to render, too long to hold the event loop."""
    templates = request.app[TEMPLATES]

    def render() -> web.Response:
        view = build(*args, **kwargs)
        text = templates.render(template, {"view": view, "site": view.site})
        return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")

    response = await asyncio.get_running_loop().run_in_executor(request.app[EXECUTOR], render)
    response.headers.update(HEADERS)
    return response


def _site(request: web.Request) -> views.Site:
    return views.site_for(request.app[SETTINGS].server.public_url, request.scheme, request.host)


async def home(request: web.Request) -> web.Response:
    catalog = request.app[CATALOG]
    _, private = await catalog.private.project_names()
    up = catalog.upstreams
    return await _respond(
        request, "home.html", _home_view, _site(request), len(private), await browse.cached_keys(up),
        await browse.cached_bytes(up), up.files.max_size if up else None, up.url if up else None,
    )


def _home_view(site: views.Site, private: int, cached: list[Key], *args: Any) -> views_home.HomeView:
    """Blocking, O(cached files): runs in the executor."""
    return views_home.home_view(site, private, len(browse.cached_projects(cached)), *args)


async def projects(request: web.Request) -> web.Response:
    catalog = request.app[CATALOG]
    reserved = request.app[SETTINGS].upstream.reserved
    _, private = await catalog.private.project_names()
    query, page = request.query.get("q", ""), views_list.page_number(request.query.get("page"))
    return await _respond(request, "projects.html", _projects_view, _site(request), private,
                          await browse.cached_keys(catalog.upstreams), reserved, query, page)


def _projects_view(site: views.Site, private: list[str], cached: list[Key], reserved: tuple[str, ...],
                   query: str, page: int) -> views_list.ProjectsView:
    """Blocking, O(projects + cached files): runs in the executor."""
    everything = views_list.listed_projects(site, private, browse.cached_projects(cached), reserved)
    return views_list.projects_view(site, everything, query, page, reserved)


async def project(request: web.Request) -> web.Response:
    raw = request.match_info["project"]
    catalog, site = request.app[CATALOG], _site(request)
    if not is_valid_project_name(raw):
        return await _respond(request, "not_found.html", not_found_view, site, raw, status=404,
                              reserved=False, upstream_enabled=catalog.upstreams is not None, valid=False)
    name = normalize(raw)
    if raw != name or not request.path.endswith("/"):
        raise redirects.moved(request, "ui_project", project=name)
    try:  # what is held here: the interface never makes upstream requests
        served = await catalog.project_page(name, cached_only=True)
    except ProjectNotFound:
        return await _respond(request, "not_found.html", not_found_view, site, name, status=404,
                              reserved=matches_any(name, request.app[SETTINGS].upstream.reserved),
                              upstream_enabled=catalog.upstreams is not None)
    if served.project is not None:
        description = await _description(request, served.project)
        return await _respond(request, "project.html", private_project_view, site, served.project, description)
    findings = await catalog.findings(name)  # the policy's, about the page with blocked releases
    build = findings.page.build if findings is not None else served.build
    return await _respond(request, "project.html", _cached_project_view, site, build,
                          await browse.cached_keys(catalog.upstreams), False, findings.decided if findings else None)


async def _description(request: web.Request, project: PrivateProject) -> Shown:
    """The current release's description, rendered once (by another process) and kept."""
    info = await asyncio.get_running_loop().run_in_executor(request.app[EXECUTOR], current_release, project)
    if info is None:
        return RENDERED_EMPTY
    return await request.app[DESCRIPTIONS].shown(info.description, info.description_content_type)


def _cached_project_view(site: views.Site, build: Callable[[], IndexPage], cached: list[Key],
                         reserved: bool, decided: Decided | None = None) -> ProjectView:
    """Blocking, O(cached files): runs in the executor."""
    page = build()
    return cached_project_view(site, page, browse.cached_files(cached, page.name), reserved, decided)


async def release(request: web.Request) -> web.Response:
    """``/pypi/<project>/`` and ``/pypi/<project>/<version>/``: the URLs the JSON API's
    ``package_url``/``release_url`` hold and publishing tools print lead to the project's page,
    at the release when one is named."""
    version = request.match_info.get("version")
    fragment = release_anchor(version) if version else ""
    name = validate_project_name(request.match_info["project"])
    raise redirects.found(request, "ui_project", project=name, fragment=fragment)


async def help_page(request: web.Request) -> web.Response:
    if not request.path.endswith("/"):
        raise redirects.moved(request, "ui_help")
    return await _respond(request, "help.html", views_home.help_view, _site(request))


async def status(request: web.Request) -> web.Response:
    app = request.app
    catalog = app[CATALOG]
    error = await storage_error(app)
    _, private = await catalog.private.project_names()
    up = catalog.upstreams
    upstream = uistatus.upstream_status(up.health.report(), up.url, time.time()) if up else None
    return await _respond(
        request, "status.html", uistatus.status_view, _site(request), storage_error=error,
        private_projects=len(private), upstream=upstream, cache=await cache_figures(catalog),
        page_cache_limit=app[SETTINGS].cache.page_cache_size, advisories=advisory_figures(feed_status(app)),
    )


async def explain_page(request: web.Request, document: dict[str, Any]) -> web.Response:
    """The web page of an explanation (``/-/explain``)."""
    return await _respond(request, "explain.html", explain_view, _site(request), document)
