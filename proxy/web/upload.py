"""``POST /pypi``: the legacy upload API as twine, poetry, pdm, hatch and uv publish speak it.

Reading the form is bounded (each limit named in the 400 that enforces it): the number of parts,
each field's size and all fields' size together; the file goes to disk, never to memory, up to
``[upload] max_file_size``. The uploader's right to the project is checked as soon as the
``name`` field arrives: twine and the other clients send it before the file, so a refused upload
costs no more than its fields.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from aiohttp import BodyPartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import BadContentDispositionHeader, BadContentDispositionParam

from proxy.core.errors import ProxyError, UploadRejected
from proxy.core.identity import Identity
from proxy.core.names import normalize
from proxy.repository.upload_form import UploadForm
from proxy.repository.uploads import UploadService
from proxy.web.keys import CATALOG, REPRESENTATIONS, UPLOADS

log = structlog.get_logger(__name__)
CHUNK = 256 * 1024
MIB = 1024 * 1024
MAX_FIELD_BYTES = 4 * MIB  # one field (the description is the largest a client sends)
MAX_FORM_BYTES = 8 * MIB  # every field but the file, together
MAX_PARTS = 2000  # classifiers and requirements repeat, but not by thousands
# Boundaries and part headers: far more than any client's, far less than a file.
MAX_FRAMING_BYTES = 4 * MIB
CHARSETS = ("utf-8", "utf8", "us-ascii", "ascii")
# After a rejection, read (and drop) at most this much of the rest of the body, so the client
# is still listening when the error arrives; beyond it, the connection is simply closed.
MAX_DRAIN_BYTES = 256 * MIB
SWEEP_EVERY = 60.0  # seconds between two sweeps of staged uploads, at most


async def upload(request: web.Request) -> web.Response:
    service = request.app[UPLOADS]
    form = UploadForm()
    try:
        identity = await service.authenticate(request.headers.get(hdrs.AUTHORIZATION), request.remote)
        _check_declared_length(request, service.max_file_size)
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
        page = await request.app[CATALOG].project_page(normalize(form.get("name") or ""))
        await request.app[REPRESENTATIONS].prerender(page)
    except Exception as exc:  # the file is safely stored; the page will render on first request
        log.warning("prerender_failed", error=str(exc))


def _check_declared_length(request: web.Request, max_file_size: int) -> None:
    """Refuse a body that says up front it is larger than any acceptable upload."""
    limit = max_file_size + MAX_FORM_BYTES + MAX_FRAMING_BYTES
    if request.content_length is not None and request.content_length > limit:
        raise UploadRejected(
            f"Upload too large: the body is {request.content_length} bytes; this server accepts a file of at "
            f"most {max_file_size // MIB} MiB ({max_file_size} bytes) plus {MAX_FORM_BYTES // MIB} MiB of fields."
        )


@dataclass
class _Budget:
    """What the form has used so far of its limits."""

    parts: int = 0
    field_bytes: int = 0


async def _read_form(request: web.Request, service: UploadService, identity: Identity, form: UploadForm) -> None:
    if not request.content_type.startswith("multipart/form-data"):
        raise UploadRejected("Upload must be multipart/form-data.")
    budget = _Budget()
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            budget.parts += 1
            if budget.parts > MAX_PARTS:
                raise UploadRejected(f"Malformed multipart body: more than {MAX_PARTS} parts, the limit for this server.")
            if not isinstance(part, BodyPartReader):
                raise UploadRejected("Malformed multipart body: a nested multipart part.")
            if not part.name:
                raise UploadRejected("Malformed multipart body: a part without a field name.")
            if part.name == "content":
                await _read_file(part, service, form)
                continue
            value = await _read_field(part, budget)
            form.add(part.name, value)
            if part.name == "name" and form.authorized is None:
                await service.authorize(identity, form, value)  # before the file is read
    except (BadContentDispositionHeader, BadContentDispositionParam) as exc:
        # aiohttp warns and reads the part as nameless (refused above); where warnings are
        # errors (-W error, as the tests run), the warning arrives here instead.
        raise UploadRejected(f"Malformed multipart body: bad Content-Disposition {str(exc)[:200]!r}.") from None
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
        raise UploadRejected(f"Malformed multipart body: {exc}".strip()) from None


async def _read_field(part: BodyPartReader, budget: _Budget) -> str:
    charset = part.get_charset(default="utf-8").lower()
    if charset not in CHARSETS:
        raise UploadRejected(f"Field {part.name!r} has charset {charset[:40]!r}; fields must be UTF-8.")
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        data += chunk
        budget.field_bytes += len(chunk)
        if len(data) > MAX_FIELD_BYTES:
            raise UploadRejected(f"Field {part.name!r} is larger than {MAX_FIELD_BYTES // MIB} MiB, "
                                 "the limit for one field.")
        if budget.field_bytes > MAX_FORM_BYTES:
            raise UploadRejected(f"The form's fields are larger than {MAX_FORM_BYTES // MIB} MiB together, "
                                 "the limit for this server (the file aside).")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UploadRejected(f"Field {part.name!r} is not valid UTF-8.") from None


async def _read_file(part: BodyPartReader, service: UploadService, form: UploadForm) -> None:
    if form.staged is not None:
        raise UploadRejected("Only one file per upload.")
    if not part.filename:
        raise UploadRejected("The 'content' field must be a file with a filename.")
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


async def staged_sweeper(app: web.Application) -> AsyncIterator[None]:
    """An owned task (a cleanup context) that removes staged uploads left idle in ``tmp/`` (a
    crash, a client that stopped sending): at start-up, then every ``staged_max_age`` / 10
    seconds, at most every SWEEP_EVERY."""
    service = app[UPLOADS]
    interval = min(SWEEP_EVERY, max(service.settings.staged_max_age / 10, 0.05))

    async def sweep_forever() -> None:
        while True:
            try:
                if removed := await service.sweep_staged():
                    log.warning("staged_uploads_swept", count=removed)
            except OSError as exc:  # the next round tries again
                log.error("staged_sweep_failed", error=str(exc))
            await asyncio.sleep(interval)

    task = asyncio.create_task(sweep_forever(), name="staged-sweeper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
