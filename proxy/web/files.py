"""Distribution and PEP 658 metadata files, sent with sendfile, Range, ETag and HEAD by aiohttp."""

from __future__ import annotations

from aiohttp import web

from proxy.errors import ProjectNotFound
from proxy.names import check_safe_filename, content_type_for, normalize
from proxy.web.keys import INDEX, STORAGE

IMMUTABLE = "max-age=31536000, immutable, public"
METADATA_SUFFIX = ".metadata"


async def distribution(request: web.Request) -> web.StreamResponse:
    raw_project, filename = request.match_info["project"], request.match_info["filename"]
    name = normalize(raw_project)
    if raw_project != name:
        raise web.HTTPMovedPermanently(
            request.app.router["file"].url_for(project=name, filename=filename)
        )
    check_safe_filename(filename)
    project = await request.app[INDEX].project(name)
    listed = filename.removesuffix(METADATA_SUFFIX)
    stored = project.file(listed) if project else None
    # Only files the index lists are served: an unlisted one may be half of an interrupted upload.
    if stored is None or (filename != listed and stored.metadata_sha256 is None):
        raise ProjectNotFound(f"No file {filename!r} in project {name!r}.")
    path = request.app[STORAGE].file_path(name, filename)
    return web.FileResponse(
        path,
        headers={"Content-Type": content_type_for(filename), "Cache-Control": IMMUTABLE},
    )
