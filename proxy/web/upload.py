"""``POST /pypi``: the legacy upload API as twine, poetry, pdm, hatch and uv publish speak it."""

from __future__ import annotations

import structlog
from aiohttp import BodyPartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from proxy.auth import Identity
from proxy.errors import ProxyError, UploadRejected
from proxy.names import normalize
from proxy.services.upload import UploadForm, UploadService
from proxy.web.keys import INDEX, UPLOADS

log = structlog.get_logger(__name__)
CHUNK = 256 * 1024
MAX_FIELD_BYTES = 4 * 1024 * 1024
MAX_FIELDS = 2000
# After a rejection, read (and drop) at most this much of the rest of the body, so the client
# is still listening when the error arrives; beyond it, the connection is simply closed.
MAX_DRAIN_BYTES = 256 * 1024 * 1024


async def upload(request: web.Request) -> web.Response:
    service = request.app[UPLOADS]
    form = UploadForm()
    try:
        identity = await service.authenticate(request.headers.get(hdrs.AUTHORIZATION))
        await _read_form(request, service, identity, form)
        created = await service.upload(identity, form)
    except ProxyError:
        if form.staged is not None:
            await service.discard(form.staged)
        await _drain(request)
        raise
    except BaseException:
        if form.staged is not None:
            await service.discard(form.staged)
        raise
    if created:
        await _prerender(request, form)
    return web.Response(text="OK\n" if created else "OK, identical file already stored\n")


async def _prerender(request: web.Request, form: UploadForm) -> None:
    """The upload is stored; its pages are rendered now, while the uploader waits, rather than by
    the first install. A failure here is logged, never reported as a failed upload."""
    try:
        await request.app[INDEX].prerender(normalize(form.get("name") or ""))
    except Exception as exc:  # the file is safely stored; the page will render on first request
        log.warning("prerender_failed", error=str(exc))


async def _read_form(request: web.Request, service: UploadService, identity: Identity, form: UploadForm) -> None:
    if not request.content_type.startswith("multipart/form-data"):
        raise UploadRejected("Upload must be multipart/form-data.")
    try:
        reader = await request.multipart()
        count = 0
        while (part := await reader.next()) is not None:
            count += 1
            if not isinstance(part, BodyPartReader) or count > MAX_FIELDS:
                raise UploadRejected("Malformed multipart body: unexpected nested or excess parts.")
            if part.name == "content":
                await _read_file(part, service, identity, form)
            elif part.name:
                form.add(part.name, await _read_field(part))
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
        raise UploadRejected(f"Malformed multipart body: {exc}".strip()) from None


async def _read_field(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise UploadRejected(f"Field {part.name!r} is too large.")
    try:
        return data.decode(part.get_charset(default="utf-8"))
    except (UnicodeDecodeError, LookupError):
        raise UploadRejected(f"Field {part.name!r} is not valid UTF-8.") from None


async def _read_file(part: BodyPartReader, service: UploadService, identity: Identity, form: UploadForm) -> None:
    if form.staged is not None:
        raise UploadRejected("Only one file per upload.")
    if not part.filename:
        raise UploadRejected("The 'content' field must be a file with a filename.")
    if name := form.get("name"):
        service.check_permission(identity, name)  # refuse before reading a large body
    form.filename = part.filename
    form.staged = service.new_staged_file()
    while chunk := await part.read_chunk(CHUNK):
        await service.write_chunk(form.staged, chunk)


async def _drain(request: web.Request) -> None:
    drained = 0
    try:
        while drained < MAX_DRAIN_BYTES and (chunk := await request.content.read(CHUNK)):
            drained += len(chunk)
    except Exception:  # the client went away or sent garbage: nothing left to protect
        return
