"""Domain errors; the web layer maps each to one HTTP status in one place."""

from __future__ import annotations

import json


class ProxyError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(ProxyError):
    """The configuration is invalid; the message names the offending key."""

    def __init__(self, key: str, problem: str) -> None:
        # The key is a dotted setting, or the option / variable that named the config file.
        super().__init__(f"{key}: {problem}" if key.startswith(("-", "$")) else f"config key {key!r}: {problem}")
        self.key = key
        self.problem = problem


class InvalidName(ProxyError):
    """A project name, version or filename is malformed or unsafe."""


class ProjectNotFound(ProxyError):
    """No such project (or version, or file) is known. ``project`` is the normalised name asked
    for, when one was (logs and metrics read it, not the message)."""

    def __init__(self, message: str, project: str | None = None) -> None:
        super().__init__(message)
        self.project = project


class ProjectNotEmpty(ProxyError):
    """A private project still has ``files`` files where the operation needs none."""

    def __init__(self, project: str, files: int) -> None:
        super().__init__(f"Private project {project!r} still has {files} file(s).")
        self.project = project
        self.files = files


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


class PolicyBlocked(Forbidden):
    """The supply-chain policy blocks this release (HTTP 403). ``rules`` names the rules that
    apply; the message says why (``Decision.summary``) and how to see every reason."""

    def __init__(self, project: str, version: str, rules: tuple[str, ...], summary: str) -> None:
        super().__init__(f"{project} {version} is blocked by this index's policy: {summary}. "
                         f"Every reason: /-/explain/{project}/{version}")
        self.project = project
        self.version = version
        self.rules = rules


class TooManyAttempts(ProxyError):
    """Too many failed logins from one client address or for one user name: refused without
    checking the credentials; ``retry_after`` is whole seconds until one more is allowed (HTTP 429)."""

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(f"Too many failed logins {what}; try again in {retry_after} s.")
        self.what = what
        self.retry_after = retry_after


class StorageFull(ProxyError):
    """The disk is full: nothing was stored, the client may retry later (HTTP 507)."""


class NotAcceptable(ProxyError):
    """Content negotiation found no representation the client accepts."""


class UpstreamError(ProxyError):
    """The upstream index could not give a usable answer (HTTP 502 when nothing is cached).
    ``url`` is what was asked (credentials masked) and ``status`` upstream's HTTP status, when
    known; set by whoever raises, read by logs and metrics."""

    url: str | None = None
    status: int | None = None


class UpstreamUnavailable(UpstreamError):
    """Upstream is unreachable, answered 5xx, or broke off its response."""


class UpstreamTimeout(UpstreamUnavailable):
    """Upstream did not answer within the configured timeout (HTTP 504)."""


class InvalidUpstreamResponse(UpstreamError):
    """Upstream answered something that is not a simple-API page we can read."""


class UpstreamRefused(InvalidUpstreamResponse):
    """Upstream named something this server will not fetch (a file URL or a redirect to a host
    not allowed, a file it cannot verify): nothing was requested there. ``rule`` names the
    setting that governs it (``file_hosts``, ``allow_private_file_hosts``,
    ``cache_unverified_files``) or what was wrong (``scheme``, ``same_origin``)."""

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


class IntegrityError(UpstreamError):
    """An upstream file's bytes do not match the hash or size its listing gave; it was discarded."""


class UpstreamFileTooLarge(UpstreamError):
    """An upstream file is larger than this server takes for one file (``[upstream] max_file_size``,
    or ``[cache] files_max_size`` when smaller): refused, or abandoned and discarded (HTTP 502)."""


class CorruptStorage(ProxyError):
    """A stored file that cannot be read back. ``path`` is where it is, ``relative`` the same path
    inside the data directory (what HTTP clients are told), ``problem`` what is wrong with it and
    ``hint`` how to recover. HTTP 500."""

    def __init__(self, path: str, relative: str, problem: str, hint: str) -> None:
        super().__init__(f"{path} is corrupt ({problem}); {hint}")
        self.path = path
        self.relative = relative
        self.problem = problem
        self.hint = hint


class DataDirUnusable(ProxyError):
    """The data directory cannot be created, read or written: ``reason`` says why, ``hint`` what to do."""

    def __init__(self, path: str, reason: str, hint: str) -> None:
        super().__init__(f"data directory {path}: {reason}; {hint}")
        self.path = path
        self.reason = reason
        self.hint = hint


class CannotListen(ProxyError):
    """The server cannot listen on ``host``:``port``: ``reason`` says why, ``hint`` what to do."""

    def __init__(self, host: str, port: int, reason: str, hint: str) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {reason}; {hint}")
        self.host = host
        self.port = port
        self.reason = reason
        self.hint = hint


class NeedsTerminal(ProxyError):
    """A command would ask a question but standard input is not a terminal; ``alternative`` is
    the option that makes it non-interactive."""

    def __init__(self, question: str, alternative: str) -> None:
        super().__init__(f"cannot ask for {question}: standard input is not a terminal; {alternative}")
        self.question = question
        self.alternative = alternative


def describe_corruption(exc: Exception) -> str:
    """What is wrong with a stored JSON file, from the exception reading it raised."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text at offset {exc.start}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {exc}"
    if isinstance(exc, KeyError):
        return f"the field {exc.args[0]!r} is missing"
    return f"unexpected content: {exc}"


class UpstreamCircuitOpen(UpstreamUnavailable):
    """Upstream has been failing since ``since`` (unix time): it is not asked until a probe succeeds."""

    def __init__(self, message: str, since: float | None, last_error: str | None) -> None:
        super().__init__(message)
        self.since = since
        self.last_error = last_error


class ObjectStoreUnavailable(ProxyError):
    """The object store (issue 14) failed: refused or dropped the connection, timed out, answered
    5xx, or refused the credentials. ``store`` names it (``s3://bucket/prefix at <endpoint>``, no
    credentials), ``reason`` says what failed. Nothing was stored or served (HTTP 503)."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"the object store {store} is unavailable: {reason}")
        self.store = store
        self.reason = reason


class ObjectNotFound(ProjectNotFound):
    """The object store has no object under ``key`` (a blob nobody stored, or one deleted):
    distinct from ObjectStoreUnavailable, which means the store could not answer. The message
    (a 404's text) leaves out the store's address; ``store`` has it for the logs."""

    def __init__(self, store: str, key: str) -> None:
        super().__init__(f"the object store has no object {key}")
        self.store = store
        self.key = key


class ObjectIntegrityError(ProxyError):
    """The bytes read for a blob do not hash to the sha256 or count the size it was stored under:
    nothing was left under ``key``. ``expected`` and ``found`` are (sha256 hex, size) pairs; the
    sha256 found is None when reading stopped early, past the expected size."""

    def __init__(self, key: str, expected: tuple[str, int], found: tuple[str | None, int]) -> None:
        if found[1] != expected[1]:
            detail = f"are {found[1]}{' or more' if found[0] is None else ''} bytes, not {expected[1]}"
        else:
            detail = f"hash to sha256 {found[0]}, not {expected[0]}"
        super().__init__(f"refused to store {key}: the bytes read {detail}")
        self.key = key
        self.expected = expected
        self.found = found

class DatabaseUnavailable(ProxyError):
    """The metadata database (``[storage] database``) cannot be reached or did not answer:
    ``database`` is its URL with the password masked, ``reason`` what the driver said (HTTP 503)."""

    def __init__(self, database: str, reason: str) -> None:
        super().__init__(f"the database {database} is unavailable: {reason}")
        self.database = database
        self.reason = reason


class SchemaMismatch(ProxyError):
    """The database's schema is not the one this version of pypi-proxy works with: ``current``
    is its migration revision (None: no schema yet), ``expected`` the one this version needs and
    ``known`` whether this version knows ``current`` (False: a newer version wrote it)."""

    def __init__(self, database: str, current: str | None, expected: str, known: bool) -> None:
        if current is None:
            detail = f"has no pypi-proxy schema yet (this version needs revision {expected})"
        elif known:
            detail = f"has schema revision {current}, this version needs {expected}"
        else:
            detail = (f"has schema revision {current}, which this version does not know (it needs {expected}); "
                      "install the newer pypi-proxy that wrote it on this host too")
        super().__init__(f"the database {database} {detail}; run `pypi-proxy db upgrade`"
                         + (" with it" if current is not None and not known else ""))
        self.database = database
        self.current = current
        self.expected = expected
        self.known = known


class MigrationConflict(ProxyError):
    """``pypi-proxy migrate`` found ``what`` (a file, user or token) in the target already, with
    other data than this install's: ``detail`` says how they differ. Nothing was overwritten."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: {detail}; the target's copy was left as it is")
        self.what = what
        self.detail = detail
