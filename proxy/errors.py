"""Domain errors; the web layer maps each to one HTTP status in one place."""

from __future__ import annotations


class ProxyError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(ProxyError):
    """The configuration is invalid; the message names the offending key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config key {key!r}: {problem}")
        self.key = key
        self.problem = problem


class InvalidName(ProxyError):
    """A project name, version or filename is malformed or unsafe."""


class ProjectNotFound(ProxyError):
    """No such project (or version, or file) is known."""


class Unauthenticated(ProxyError):
    """No credentials, or credentials that do not match (HTTP 401)."""


class Forbidden(ProxyError):
    """Valid credentials that may not do this (HTTP 403)."""


class UploadRejected(ProxyError):
    """An upload that fails validation; ``reason`` is shown to the client."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class FileExists(UploadRejected):
    """Same filename, different bytes. twine's --skip-existing keys on this text."""

    def __init__(self, filename: str) -> None:
        super().__init__(
            f"File already exists ({filename!r}) with different content. "
            "See /help/#file-name-reuse for more information."
        )


class StorageFull(ProxyError):
    """The disk is full: nothing was stored, the client may retry later (HTTP 507)."""


class NotAcceptable(ProxyError):
    """Content negotiation found no representation the client accepts."""


class UpstreamError(ProxyError):
    """The upstream index could not give a usable answer (HTTP 502 when nothing is cached)."""


class UpstreamUnavailable(UpstreamError):
    """Upstream is unreachable, answered 5xx, or broke off its response."""


class UpstreamTimeout(UpstreamUnavailable):
    """Upstream did not answer within the configured timeout (HTTP 504)."""


class InvalidUpstreamResponse(UpstreamError):
    """Upstream answered something that is not a simple-API page we can read."""


class IntegrityError(UpstreamError):
    """An upstream file's bytes do not match the hash or size its listing gave; it was discarded."""


class UpstreamCircuitOpen(UpstreamUnavailable):
    """Upstream has been failing since ``since`` (unix time): it is not asked until a probe succeeds."""

    def __init__(self, message: str, since: float | None, last_error: str | None) -> None:
        super().__init__(message)
        self.since = since
        self.last_error = last_error
