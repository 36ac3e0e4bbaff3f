"""Request ids, security headers, one access line per request, and the one place domain errors
become statuses."""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from multidict import istr

from proxy.core.errors import (
    CorruptStorage,
    DatabaseUnavailable,
    Forbidden,
    InvalidName,
    NotAcceptable,
    ObjectIntegrityError,
    ObjectStoreUnavailable,
    PolicyBlocked,
    ProjectNotFound,
    StorageFull,
    TooManyAttempts,
    Unauthenticated,
    UploadRejected,
    UpstreamError,
    UpstreamRefused,
    UpstreamTimeout,
)
from proxy.log import bind_request_id
from proxy.web.keys import METRICS, REQUEST_ID

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("proxy.access")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
REALM = 'Basic realm="pypi-proxy"'

# Issue 12 L4. Nothing this server sends but the web interface needs a browser to run or load
# anything: pages, files, JSON and error texts (which echo the path) get the strictest policy.
STRICT_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
# The web interface: its stylesheet and script from this origin (/-/static/), no inline code;
# images of project descriptions (README badges) from anywhere over https.
UI_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
             "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",  # a file or an error text is never run as HTML or script
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": STRICT_POLICY,
}
# As set on every response: names case-folded once (istr), not per response.
_SECURITY_ITEMS = tuple((istr(name), value) for name, value in SECURITY_HEADERS.items())
X_REQUEST_ID, X_PROXY_CACHE, X_PROXY_SOURCE = istr("X-Request-ID"), istr("X-Proxy-Cache"), istr("X-Proxy-Source")
CONTENT_ENCODING = istr("Content-Encoding")


def _reason_phrase(text: str) -> str:
    """Status-line reason: one line of printable ASCII (warehouse puts errors there, twine shows it)."""
    return re.sub(r"[^\x20-\x7e]", " ", text)[:400]


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, reason=_reason_phrase(message), text=message + "\n", headers=headers)


def request_id_of(request: BaseRequest) -> str:
    """This request's id: the client's X-Request-ID when sane, else a new random one (kept)."""
    request_id = request.get(REQUEST_ID)
    if request_id is None:
        request_id = request[REQUEST_ID] = _new_request_id(request)
    return request_id


def _new_request_id(request: BaseRequest) -> str:
    incoming = request.headers.get(X_REQUEST_ID)
    if incoming and _SAFE_REQUEST_ID.match(incoming):
        return incoming
    # Sixteen hex digits from the process's PRNG (seeded from the OS at start): an id to find a
    # request's lines by, not a secret; os.urandom would cost a system call per request.
    return f"{random.getrandbits(64):016x}"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one middleware: binds the request id to every log line of this request, and maps the
    core's exceptions to HTTP answers (nothing below the web layer knows statuses). One, not
    two: each middleware is another coroutine and frame on every request."""
    request_id = request[REQUEST_ID] = _new_request_id(request)
    bind_request_id(request_id)
    try:
        return await handler(request)
    except MAPPED as exc:
        return domain_error(request, exc)


async def stamp_response(request: web.Request, response: StreamResponse) -> None:
    """``on_response_prepare``: the request id and ``SECURITY_HEADERS`` go on every response as its
    headers are sent, also on those a handler sends itself (files, sliced pages) and on aiohttp's
    own (404, 405, 500); a handler that sets its own Content-Security-Policy (the web
    interface's) keeps it."""
    headers = response.headers
    headers[X_REQUEST_ID] = request_id_of(request)
    for name, value in _SECURITY_ITEMS:
        headers.setdefault(name, value)


MAPPED = (Unauthenticated, Forbidden, TooManyAttempts, UploadRejected, StorageFull, NotAcceptable, ProjectNotFound,
          InvalidName, UpstreamError, CorruptStorage, DatabaseUnavailable, ObjectStoreUnavailable, ObjectIntegrityError)


def domain_error(request: web.Request, exc: Exception) -> web.Response:
    """The HTTP answer to one of the core's exceptions (``MAPPED``): the one place they become statuses."""
    if isinstance(exc, Unauthenticated):
        return error_response(401, str(exc), {"WWW-Authenticate": REALM})
    if isinstance(exc, PolicyBlocked):
        request.app[METRICS].policy_blocked(exc.project, exc.rules)
        return error_response(403, str(exc))
    if isinstance(exc, Forbidden):
        return error_response(403, str(exc))
    if isinstance(exc, TooManyAttempts):
        return error_response(429, str(exc), {"Retry-After": str(exc.retry_after)})
    if isinstance(exc, UploadRejected):
        return error_response(exc.status, exc.reason)
    if isinstance(exc, StorageFull):
        return error_response(507, str(exc))
    if isinstance(exc, NotAcceptable):
        return error_response(406, str(exc))
    if isinstance(exc, (ProjectNotFound, InvalidName)):
        return error_response(404, str(exc))
    if isinstance(exc, UpstreamError):
        return _upstream_error(exc)
    assert isinstance(exc, (CorruptStorage, DatabaseUnavailable, ObjectStoreUnavailable, ObjectIntegrityError)), exc
    return _storage_error(exc)


def _upstream_error(exc: UpstreamError) -> web.Response:
    if isinstance(exc, UpstreamTimeout):
        return error_response(504, f"Upstream timed out and nothing is cached: {exc}")
    if isinstance(exc, UpstreamRefused):
        return error_response(502, f"Upstream answer refused ({exc.rule}); nothing was fetched or cached: {exc}")
    return error_response(502, f"Upstream failed and nothing is cached: {exc}")


def _storage_error(exc: CorruptStorage | DatabaseUnavailable | ObjectStoreUnavailable | ObjectIntegrityError
                   ) -> web.Response:
    """The server's own storage failed: its data directory, its database or its object store.
    Clients learn what failed and the fix, never a path or a database's address (the log has them)."""
    if isinstance(exc, CorruptStorage):
        log.error("corrupt_storage", path=exc.path, problem=exc.problem)
        return error_response(500, f"The server's stored file {exc.relative} is corrupt ({exc.problem}); "
                                   f"its administrator should {exc.hint}.")
    if isinstance(exc, DatabaseUnavailable):
        log.error("database_unavailable", database=exc.database, reason=exc.reason)
        return error_response(503, "The index's database is unavailable; try again shortly.", {"Retry-After": "5"})
    if isinstance(exc, ObjectStoreUnavailable):
        log.warning("object_store_unavailable", store=exc.store, reason=exc.reason)
        return error_response(503, f"The object store {exc.store} is unavailable ({exc.reason}); try again later.",
                              {"Retry-After": "5"})
    # Bytes that changed between their check and their store (a disk fault): nothing was stored.
    log.error("object_integrity", key=exc.key, expected=exc.expected, found=exc.found)
    return error_response(500, f"The server could not store a file: {exc}")


def _body_bytes(method: str, response: StreamResponse) -> int:
    """Body bytes sent. aiohttp's body_length counts headers and misses sendfile'd bodies, so a
    declared length is trusted (a connection broken off early is then over-counted)."""
    if method == "HEAD":
        return 0
    length = response.content_length
    return length if length is not None else response.body_length


def _route_of(request: web.Request) -> str:
    """The matched route's pattern (bounded label values for metrics), or "unmatched"."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


class AccessLogger(AbstractAccessLogger):
    """One structured line per request, written after the body was sent, so bytes are real; and
    the request counted in the metrics (``proxy.web.metrics.Metrics.observe``)."""

    def log(self, request: BaseRequest, response: StreamResponse, duration: float) -> None:
        headers = response.headers
        cache = headers.get(X_PROXY_CACHE)
        method, status = request.method, response.status
        sent = _body_bytes(method, response)
        log.info(
            "request",
            request_id=request.get(REQUEST_ID),
            method=method,
            path=request.path,
            status=status,
            bytes=sent,
            ms=round(duration * 1000, 2),
            cache=cache,
            source=headers.get(X_PROXY_SOURCE),
            encoding=headers.get(CONTENT_ENCODING),
            remote=request.remote,
        )
        if isinstance(request, web.Request):  # not aiohttp's answer to a request it could not parse
            route = _route_of(request)
            request.app[METRICS].observe(route, method, status, duration, sent,
                                         "file" if route.startswith("/pypi/files/") else "page", cache)

    @property
    def enabled(self) -> bool:
        return True
