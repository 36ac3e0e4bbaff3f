"""PyPI's JSON API (``/pypi/<project>[/<version>]/json``), read by renovate, pip-audit, poetry and scripts."""

from __future__ import annotations

from aiohttp import web

from proxy.core.names import validate_project_name
from proxy.web import redirects
from proxy.web.keys import JSON_API, SETTINGS
from proxy.web.simple import source_headers


def repository_base_url(request: web.Request) -> str:
    """Where ``/pypi`` is: absolute under the configured public URL, else the path ``/pypi``.

    Never built from the request's Host header (issue 12 L9): a shared cache in front keys on the
    URL, so one client's Host would shape everyone's document. Warehouse gives absolute URLs;
    the readers of this API (renovate, pip-audit, dependabot, poetry's PyPI source) read releases,
    versions, upload times and digests, and a path resolves against the document's own URL."""
    public = request.app[SETTINGS].server.public_url
    return f"{public}/pypi" if public else "/pypi"


async def project_json(request: web.Request) -> web.Response:
    raw = request.match_info["project"]
    version = request.match_info.get("version")
    name = validate_project_name(raw)
    if raw != name:
        route = "json_version" if version else "json_project"
        parts = {"project": name, **({"version": version} if version else {})}
        raise redirects.moved(request, route, **parts)
    body, source, cache = await request.app[JSON_API].document(name, version, repository_base_url(request))
    headers = {"Cache-Control": "max-age=0, must-revalidate",
               **source_headers(source.value, cache.value if cache else None)}
    return web.Response(body=body, content_type="application/json", headers=headers)
