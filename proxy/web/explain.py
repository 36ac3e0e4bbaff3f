"""``/-/explain/<project>/<version>``: why a release is served, warned about or blocked (JSON for
clients such as ``pypi-proxy policy explain`` and ``audit``, a web page for browsers)."""

from __future__ import annotations

from aiohttp import web

from proxy.core.names import normalize, validate_project_name
from proxy.ui import handlers as ui
from proxy.web.keys import EXPLAINER


async def explain(request: web.Request) -> web.StreamResponse:
    raw, version = request.match_info["project"], request.match_info["version"]
    name = validate_project_name(raw)
    explanation = await request.app[EXPLAINER].explain(normalize(name), version)
    document = explanation.to_json()
    if request.query.get("format") != "json" and _prefers_html(request.headers.get("Accept", "")):
        return await ui.explain_page(request, document)
    return web.json_response(document, headers={"Cache-Control": "no-cache"})


def _prefers_html(accept: str) -> bool:
    """Browsers ask for text/html first; clients that ask for JSON, or for anything, get JSON."""
    return accept.split(",")[0].strip().startswith("text/html")
