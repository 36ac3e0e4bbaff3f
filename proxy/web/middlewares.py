"""Request ids, security headers, one access line per request, and the one place domain errors
become statuses."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

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


def _reason_phrase(text: str) -> str:
    """Status-line reason: one line of printable ASCII (warehouse puts errors there, twine shows it)."""
    return re.sub(r"[^\x20-\x7e]", " ", text)[:400]


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, reason=_reason_phrase(message), text=message + "\n", headers=headers)


def request_id_of(request: BaseRequest) -> str:
    """This request's id: the client's X-Request-ID when sane, else a new random one (kept)."""
    request_id = request.get(REQUEST_ID)
    if request_id is None:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else os.urandom(8).hex()
        request[REQUEST_ID] = request_id
    return request_id


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind the request id to every log line of this request."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id_of(request))
    return await handler(request)


async def add_request_id(request: web.Request, response: StreamResponse) -> None:
    """``on_response_prepare``: the id goes on every response as its headers are sent, also on those
    a handler sends itself (files, sliced pages) and on aiohttp's own (404, 405, 500)."""
    response.headers["X-Request-ID"] = request_id_of(request)


async def add_security_headers(request: web.Request, response: StreamResponse) -> None:
    """``on_response_prepare``: ``SECURITY_HEADERS`` on every response, as for the request id; a
    handler that sets its own Content-Security-Policy (the web interface's) keeps it."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


@web.middleware
async def domain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map the core's exceptions to HTTP answers; nothing below the web layer knows statuses."""
    try:
        return await handler(request)
    except Unauthenticated as exc:
        return error_response(401, str(exc), {"WWW-Authenticate": REALM})
    except PolicyBlocked as exc:
        request.app[METRICS].policy_blocked(exc.project, exc.rules)
        return error_response(403, str(exc))
    except Forbidden as exc:
        return error_response(403, str(exc))
    except TooManyAttempts as exc:
        return error_response(429, str(exc), {"Retry-After": str(exc.retry_after)})
    except UploadRejected as exc:
        return error_response(exc.status, exc.reason)
    except StorageFull as exc:
        return error_response(507, str(exc))
    except NotAcceptable as exc:
        return error_response(406, str(exc))
    except (ProjectNotFound, InvalidName) as exc:
        return error_response(404, str(exc))
    except UpstreamError as exc:
        return _upstream_error(exc)
    except (CorruptStorage, DatabaseUnavailable, ObjectStoreUnavailable, ObjectIntegrityError) as exc:
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


def _body_bytes(request: BaseRequest, response: StreamResponse) -> int:
    """Body bytes sent. aiohttp's body_length counts headers and misses sendfile'd bodies, so a
    declared length is trusted (a connection broken off early is then over-counted)."""
    if request.method == "HEAD":
        return 0
    if response.content_length is not None:
        return response.content_length
    return response.body_length


def _route_of(request: BaseRequest) -> str:
    """The matched route's pattern (bounded label values for metrics), or "unmatched"."""
    if isinstance(request, web.Request):
        resource = request.match_info.route.resource
        if resource is not None:
            return resource.canonical
    return "unmatched"


class AccessLogger(AbstractAccessLogger):
    """One structured line per request, written after the body was sent, so bytes are real."""

    def log(self, request: BaseRequest, response: StreamResponse, duration: float) -> None:
        route = _route_of(request)
        cache = response.headers.get("X-Proxy-Cache")
        sent = _body_bytes(request, response)
        log.info(
            "request",
            request_id=request.get(REQUEST_ID),
            method=request.method,
            path=request.path,
            status=response.status,
            bytes=sent,
            ms=round(duration * 1000, 2),
            cache=cache,
            source=response.headers.get("X-Proxy-Source"),
            encoding=response.headers.get("Content-Encoding"),
            remote=request.remote,
        )
        if isinstance(request, web.Request):
            request.app[METRICS].observe(
                route, request.method, response.status, duration, sent,
                "file" if route.startswith("/pypi/files/") else "page", cache,
            )

    @property
    def enabled(self) -> bool:
        return True
