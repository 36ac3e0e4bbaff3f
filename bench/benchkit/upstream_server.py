"""A stand-in for the nginx upstream when nginx is not installed: the same tree, the same rules.

Run as a script: ``python upstream_server.py --root TREE --port PORT --files-log PATH``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aiohttp import web

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ROOT = web.AppKey("root", Path)
FILES_LOG = web.AppKey("files_log", Path)


def _inside(root: Path, relative: str) -> Path:
    path = (root / relative).resolve()
    if root.resolve() not in path.parents and path != root.resolve():
        raise web.HTTPNotFound()
    return path


async def simple(request: web.Request) -> web.StreamResponse:
    relative = request.match_info["tail"]
    if relative and not relative.endswith("/"):
        raise web.HTTPMovedPermanently(f"/simple/{relative}/")
    wants_json = JSON_TYPE in request.headers.get("Accept", "")
    page = _inside(request.app[ROOT], f"simple/{relative}") / ("index.json" if wants_json else "index.html")
    if not page.is_file():
        raise web.HTTPNotFound()
    stat = page.stat()
    etag = f'"{stat.st_mtime_ns // 10**9:x}-{stat.st_size:x}"'
    headers = {"ETag": etag, "Vary": "Accept"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=page.read_bytes(), headers=headers,
                        content_type=JSON_TYPE if wants_json else "text/html")


async def files(request: web.Request) -> web.StreamResponse:
    path = _inside(request.app[ROOT], f"files/{request.match_info['tail']}")
    status = 200 if path.is_file() else 404
    with request.app[FILES_LOG].open("a") as log:
        log.write(f"GET {request.path} {status} -\n")
    if status == 404:
        raise web.HTTPNotFound()
    return web.FileResponse(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--files-log", type=Path, required=True)
    args = parser.parse_args()
    app = web.Application()
    app[ROOT] = args.root
    app[FILES_LOG] = args.files_log
    app.router.add_get("/simple/{tail:.*}", simple)
    app.router.add_get("/files/{tail:.+}", files)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
