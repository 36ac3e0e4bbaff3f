"""A PyPI stand-in for tests: a real aiohttp server on loopback serving real wheels built by the
tests, speaking PEP 691 JSON, PEP 503 HTML or both, and able to misbehave on request."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import json
import re
import socket
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.builders import Dist

JSON_V1 = "application/vnd.pypi.simple.v1+json"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class FakeFile:
    filename: str
    content: bytes
    metadata: bytes | None = None  # PEP 658 file, offered when set
    requires_python: str | None = None
    yanked: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class Misbehaviour:
    """Switches a test flips to make the upstream fail in one specific way."""

    page_status: int | None = None  # answer every page with this status (500, 503, 404, ...)
    file_status: int | None = None
    delay: float = 0.0  # seconds to wait before answering anything
    truncate_pages: bool = False  # announce the full length, send half, close
    truncate_files: bool = False
    # A truncated file's connection closes once this is set (the test saw the proxy hold the
    # half it was sent), not at once: where a download breaks is then the test's choice.
    truncate_hold: asyncio.Event | None = None
    corrupt_files: bool = False  # send different bytes of the right length (wrong hash)
    chunked_files: bool = False  # no Content-Length: the size is known only at the end
    redirect_pages_to: str | None = None  # absolute base URL: 302 to <base><path>
    redirect_files_to: str | None = None
    file_chunk_pause: float = 0.0  # pause between chunks of a file body (a slow download)
    # Stalls (issue 11), for pages or files: "hang" accepts the request and never answers;
    # "hang_body" sends the headers, then nothing; "trickle" sends one byte every trickle_every s.
    page_stall: str | None = None
    file_stall: str | None = None
    list_stall: str | None = None  # the project list (root page) only
    trickle_every: float = 0.2
    page_body: bytes | None = None  # answer every page 200 with these bytes as PEP 691 JSON (garbage)
    # One entry used up per file request, in order: "corrupt", "truncate" or "ok" (issue 12 H1:
    # a corrupt first download, then a good retry). Empty: the switches above decide.
    file_plan: list[str] = field(default_factory=list)
    file_chunk_size: int = 64 * 1024  # bytes per write of a file body (4096: a slow link's pieces)
    endless_files: bool = False  # chunked, and never ending: bytes until stop (issue 12 L1)


@dataclass
class FakeUpstream:
    flavour: str = "both"  # "json", "html" or "both" (negotiated like PyPI)
    projects: dict[str, list[FakeFile]] = field(default_factory=dict)
    project_names: dict[str, str] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    seen_headers: list[dict[str, str]] = field(default_factory=list)
    bad: Misbehaviour = field(default_factory=Misbehaviour)
    ranges: bool = True  # answer Range requests with 206, as PyPI's CDN does
    range_requests: Counter[str] = field(default_factory=Counter)
    bytes_sent: Counter[str] = field(default_factory=Counter)  # body bytes, by path
    # Different bytes served to Range requests only (an upstream that lies to lazy readers).
    range_content: dict[str, bytes] = field(default_factory=dict)
    file_query: str = ""  # appended to every file URL listed ("tok=abc": signed URLs)
    provenance: dict[str, bytes] = field(default_factory=dict)  # PEP 740 objects, by filename
    # PEP 708/792 keys of a project's JSON page (HTML pages get the matching <meta> tags).
    project_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen_urls: list[str] = field(default_factory=list)  # path and query of every request
    # Untrusted listings (issue 12 M7): a file's URL as listed instead of this server's own, files
    # listed without any hash, and redirects by request path to a Location sent exactly as given.
    file_urls: dict[str, str] = field(default_factory=dict)
    unhashed: set[str] = field(default_factory=set)
    unhashed_metadata: set[str] = field(default_factory=set)  # PEP 658 file offered as "true"
    redirects: dict[str, str] = field(default_factory=dict)
    upload_times: dict[str, str] = field(default_factory=dict)  # PEP 700 upload-time by filename
    port: int = 0
    _runner: web.AppRunner | None = None
    _released: asyncio.Event | None = None  # set by stop: stalled answers end

    # Content --------------------------------------------------------------------------------

    def add(self, dist: Dist, wheel: bool = True, sdist: bool = True, metadata: bool = True,
            yanked: str | None = None) -> list[FakeFile]:
        key = _normalize(dist.name)
        self.project_names.setdefault(key, dist.name)
        added = []
        if wheel:
            added.append(FakeFile(dist.wheel_filename, dist.wheel(), dist.metadata() if metadata else None,
                                  dist.requires_python, yanked))
        if sdist:
            added.append(FakeFile(dist.sdist_filename, dist.sdist(), None, dist.requires_python, yanked))
        self.projects.setdefault(key, []).extend(added)
        return added

    def add_file(self, project: str, file: FakeFile) -> FakeFile:
        """A file as built elsewhere (an old ``.tar`` or ``.zip`` sdist, a large blob)."""
        key = _normalize(project)
        self.project_names.setdefault(key, project)
        self.projects.setdefault(key, []).append(file)
        return file

    def file(self, filename: str) -> FakeFile:
        return next(f for files in self.projects.values() for f in files if f.filename == filename)

    # Lifecycle ------------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.origin}/simple"

    async def start(self) -> None:
        """Listen (again) on the same port, so a proxy configured with ``url`` finds it."""
        self.port = self.port or free_port()
        self._released = asyncio.Event()
        app = web.Application()
        app.router.add_get("/simple/", self._root)
        app.router.add_get("/simple/{project}/", self._page)
        app.router.add_get("/files/{filename}", self._file)
        app.router.add_get("/integrity/{filename}/provenance", self._provenance)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        """Go down: connections are refused until ``start`` again."""
        if self._released is not None:
            self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # Handlers -------------------------------------------------------------------------------

    async def _misbehave(self, request: web.Request, status: int | None,
                         redirect: str | None, stall: str | None = None) -> web.Response | None:
        self.requests[request.path] += 1
        self.seen_urls.append(request.path_qs)
        self.seen_headers.append(dict(request.headers))
        if self.bad.delay:
            await asyncio.sleep(self.bad.delay)
        if (location := self.redirects.get(request.path)) is not None:
            return web.Response(status=302, headers={"Location": location})
        if stall == "hang":
            assert self._released is not None
            await self._released.wait()
            return web.Response(status=503, text="stopped\n")
        if redirect:
            raise web.HTTPFound(redirect + request.path_qs)
        if status is not None:
            return web.Response(status=status, text="misbehaving\n")
        return None

    def _wants_json(self, request: web.Request) -> bool:
        if self.flavour != "both":
            return self.flavour == "json"
        return JSON_V1 in request.headers.get("Accept", "")

    async def _answer(self, request: web.Request, body: bytes, content_type: str) -> web.StreamResponse:
        if self.bad.page_stall in ("hang_body", "trickle"):  # whatever the validators say
            return await self._stalled(request, body, content_type, self.bad.page_stall)
        etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        if self.bad.truncate_pages:
            return await _truncated(request, body, content_type)
        return web.Response(body=body, headers={"Content-Type": content_type, "ETag": etag,
                                                "Vary": "Accept"})

    async def _root(self, request: web.Request) -> web.StreamResponse:
        if (refusal := await self._misbehave(request, self.bad.page_status, self.bad.redirect_pages_to,
                                             self.bad.list_stall or self.bad.page_stall)) is not None:
            return refusal
        names = sorted(self.project_names.values(), key=_normalize)
        if self._wants_json(request):
            body = json.dumps({"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]})
            return await self._answer(request, body.encode(), JSON_V1)
        anchors = "".join(f'<a href="{_normalize(n)}/">{html.escape(n)}</a>\n' for n in names)
        return await self._answer(request, f"<html><body>{anchors}</body></html>".encode(), "text/html")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        if (refusal := await self._misbehave(request, self.bad.page_status, self.bad.redirect_pages_to,
                                             self.bad.page_stall)) is not None:
            return refusal
        if self.bad.page_body is not None:
            return web.Response(body=self.bad.page_body, headers={"Content-Type": JSON_V1})
        name = request.match_info["project"]
        if name not in self.projects:
            return web.Response(status=404, text="Not Found\n")
        files = self.projects[name]
        if self._wants_json(request):
            return await self._answer(request, self._json_page(name, files), JSON_V1)
        return await self._answer(request, self._html_page(name, files), "text/html; charset=utf-8")

    def _file_url(self, filename: str) -> str:
        if filename in self.file_urls:
            return self.file_urls[filename]
        return f"{self.origin}/files/{filename}" + (f"?{self.file_query}" if self.file_query else "")

    def _json_page(self, name: str, files: list[FakeFile]) -> bytes:
        def entry(f: FakeFile) -> dict[str, Any]:
            meta: Any = {"sha256": hashlib.sha256(f.metadata).hexdigest()} if f.metadata else False
            if f.metadata and f.filename in self.unhashed_metadata:
                meta = True
            provenance = f"{self.origin}/integrity/{f.filename}/provenance" if f.filename in self.provenance else None
            return {
                "provenance": provenance,
                "filename": f.filename, "url": self._file_url(f.filename),
                "hashes": {} if f.filename in self.unhashed else {"sha256": f.sha256},
                "requires-python": f.requires_python,
                "core-metadata": meta, "data-dist-info-metadata": meta,
                "yanked": f.yanked if f.yanked else False, "size": len(f.content),
                "upload-time": self.upload_times.get(f.filename, "2025-01-02T03:04:05.000000Z"),
            }
        versions = sorted({re.sub(r"\.(tar\.gz|tar|zip|whl)$", "", f.filename.split("-")[1]) for f in files})
        document = {"meta": {"api-version": "1.1"}, "name": name, "versions": versions,
                    "files": [entry(f) for f in files], **self.project_keys.get(name, {})}
        return json.dumps(document).encode()

    def _html_page(self, name: str, files: list[FakeFile]) -> bytes:
        anchors = []
        for f in files:
            attributes = ""
            if f.requires_python:
                attributes += f' data-requires-python="{html.escape(f.requires_python)}"'
            if f.yanked is not None:
                attributes += f' data-yanked="{html.escape(f.yanked)}"'
            if f.metadata and f.filename in self.unhashed_metadata:
                attributes += ' data-dist-info-metadata="true"'
            elif f.metadata:
                attributes += f' data-dist-info-metadata="sha256={hashlib.sha256(f.metadata).hexdigest()}"'
            if f.filename in self.provenance:
                attributes += f' data-provenance="../../integrity/{f.filename}/provenance"'
            query = html.escape(f"?{self.file_query}") if self.file_query else ""
            href = html.escape(self.file_urls[f.filename]) if f.filename in self.file_urls \
                else f"../../files/{f.filename}{query}"
            fragment = "" if f.filename in self.unhashed else f"#sha256={f.sha256}"
            anchors.append(f'<a href="{href}{fragment}"{attributes}>{f.filename}</a>')
        keys = self.project_keys.get(name, {})
        tags = [("pypi:tracks", url) for url in keys.get("tracks", [])]
        tags += [("pypi:alternate-locations", url) for url in keys.get("alternate-locations", [])]
        if "project-status" in keys:
            tags += [("pypi:project-status", keys["project-status"]["status"]),
                     ("pypi:project-status-reason", keys["project-status"].get("reason") or "")]
        head = "".join(f'<meta name="{n}" content="{html.escape(v)}">' for n, v in tags)
        return (f"<!DOCTYPE html><html><head>{head}</head><body>\n" + "<br>\n".join(anchors)
                + "\n</body></html>\n").encode()

    async def _provenance(self, request: web.Request) -> web.StreamResponse:
        if (refusal := await self._misbehave(request, self.bad.file_status, None)) is not None:
            return refusal
        body = self.provenance.get(request.match_info["filename"])
        if body is None:
            return web.Response(status=404)
        self.bytes_sent[request.path] += len(body)
        return web.Response(body=body, content_type="application/json")

    async def _file(self, request: web.Request) -> web.StreamResponse:
        if (refusal := await self._misbehave(request, self.bad.file_status, self.bad.redirect_files_to,
                                             self.bad.file_stall)) is not None:
            return refusal
        filename = request.match_info["filename"]
        metadata = filename.endswith(".metadata")
        try:
            found = self.file(filename.removesuffix(".metadata"))
        except StopIteration:
            return web.Response(status=404)
        body = found.metadata if metadata else found.content
        if body is None:
            return web.Response(status=404)
        plan = self.bad.file_plan.pop(0) if self.bad.file_plan else None
        if self.bad.endless_files:
            return await self._endless(request)
        if self.bad.corrupt_files or plan == "corrupt":
            body = bytes(b ^ 0xFF for b in body)
        if self.bad.truncate_files or plan == "truncate":
            return await _truncated(request, body, "application/octet-stream", self.bad.file_chunk_size,
                                    self.bad.file_chunk_pause, chunked=self.bad.chunked_files,
                                    hold=self.bad.truncate_hold)
        if self.bad.file_stall in ("hang_body", "trickle"):
            return await self._stalled(request, body, "application/octet-stream", self.bad.file_stall)
        whole = self.range_content.get(filename, body)
        if self.ranges and (wanted := _byte_range(request.headers.get("Range", ""), len(whole))) is not None:
            self.range_requests[request.path] += 1
            start, end = wanted
            self.bytes_sent[request.path] += end - start
            return web.Response(status=206, body=whole[start:end], headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"bytes {start}-{end - 1}/{len(whole)}"})
        self.bytes_sent[request.path] += len(body)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if not self.bad.chunked_files:
            response.content_length = len(body)
        await response.prepare(request)
        step = self.bad.file_chunk_size
        for start in range(0, len(body), step):
            await response.write(body[start:start + step])
            if self.bad.file_chunk_pause:
                await asyncio.sleep(self.bad.file_chunk_pause)
        await response.write_eof()
        return response

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        """A chunked body that never ends (until ``stop`` or the client leaves); ``bytes_sent`` counts
        what was written so far."""
        assert self._released is not None
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        piece = b"\x00" * self.bad.file_chunk_size
        while not self._released.is_set():
            await response.write(piece)
            self.bytes_sent[request.path] += len(piece)
            if self.bad.file_chunk_pause:
                await asyncio.sleep(self.bad.file_chunk_pause)
        return response

    async def _stalled(self, request: web.Request, body: bytes, content_type: str, how: str) -> web.StreamResponse:
        """Announce the whole length, then send nothing ("hang_body") or a byte at a time ("trickle")
        until ``stop``."""
        assert self._released is not None
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.content_length = len(body)
        await response.prepare(request)
        for position in range(len(body) if how == "trickle" else 0):
            await response.write(body[position:position + 1])
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._released.wait(), self.bad.trickle_every)
            if self._released.is_set():
                break
        await self._released.wait()
        return response


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=-N``, ``bytes=A-B`` or ``bytes=A-`` as [start, end) clipped to the file (RFC 9110 14.1.2)."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not match or not (match.group(1) or match.group(2)):
        return None
    if not match.group(1):
        return max(0, size - int(match.group(2))), size
    start = int(match.group(1))
    end = min(size, int(match.group(2)) + 1) if match.group(2) else size
    return start, end


async def _truncated(request: web.Request, body: bytes, content_type: str, step: int = 2**62,
                     pause: float = 0.0, chunked: bool = False,
                     hold: asyncio.Event | None = None) -> web.StreamResponse:
    """Announce the whole length (or send chunks), send half of it (``step`` bytes at a time), and
    hang up (once ``hold`` is set, when given)."""
    response = web.StreamResponse(headers={"Content-Type": content_type})
    if not chunked:
        response.content_length = len(body)
    await response.prepare(request)
    half = len(body) // 2
    for start in range(0, half, step):
        await response.write(body[start:min(half, start + step)])
        if pause:
            await asyncio.sleep(pause)
    if hold is not None:
        await asyncio.wait_for(hold.wait(), 10)
    assert request.transport is not None
    request.transport.close()
    return response
