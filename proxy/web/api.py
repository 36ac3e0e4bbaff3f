"""PyPI's JSON API (``/pypi/<project>/json``), read by poetry, pip-audit, renovate and scripts."""

from __future__ import annotations

from aiohttp import web

from proxy import render
from proxy.errors import ProjectNotFound
from proxy.names import normalize
from proxy.web import redirects
from proxy.web.keys import INDEX, SETTINGS


def repository_base_url(request: web.Request) -> str:
    """Absolute URL of ``/pypi``: the configured public URL, else the one the client used."""
    public = request.app[SETTINGS].server.public_url
    origin = public if public else f"{request.scheme}://{request.host}"
    return f"{origin}/pypi"


async def project_json(request: web.Request) -> web.Response:
    raw = request.match_info["project"]
    version = request.match_info.get("version")
    name = normalize(raw)
    if raw != name:
        route = "json_version" if version else "json_project"
        parts = {"project": name, **({"version": version} if version else {})}
        raise redirects.moved(request, route, **parts)
    project = await request.app[INDEX].project(name)
    if project is None:
        raise ProjectNotFound(f"No project named {name!r}.")
    if version is not None and project.release(version) is None:
        raise ProjectNotFound(f"No version {version!r} of project {name!r}.")
    document = render.json_api(project, repository_base_url(request), version)
    return web.json_response(document, headers={"Cache-Control": "max-age=0, must-revalidate"})
