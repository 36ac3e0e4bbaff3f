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
    """A file that would be a second copy of a stored one. twine's --skip-existing keys on this
    text ("already exist" in a 400's reason or body), so every variant starts with it.

    ``existing`` is None when the filename itself is taken by different bytes (STANDARDS E4);
    else the stored file the upload duplicates under another filename: the same distribution
    (H1: name, version, build tag and tags; one sdist per release) or the same bytes.
    """

    def __init__(self, filename: str, existing: str | None = None, same_content: bool = False) -> None:
        if existing is None:
            detail = f" ({filename!r}) with different content"
        elif same_content:
            detail = f": {filename!r} has the same content as the stored {existing!r}"
        else:
            detail = (
                f": {filename!r} is the same distribution as the stored {existing!r} (same project and "
                "version, and for a wheel the same build tag and tags; a release has at most one sdist)"
            )
        super().__init__(f"File already exists{detail}. See /help/#file-name-reuse for more information.")
        self.filename = filename
        self.existing = existing


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
