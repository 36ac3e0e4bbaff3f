"""Asking a running proxy why it serves, warns about or blocks a release: ``GET /-/explain/<project>/<version>``.

The answer (JSON, issue 15) is read into small frozen dataclasses; the wording of verdicts for
``pypi-proxy policy explain`` and ``pypi-proxy audit`` lives here too, so both say the same.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from proxy.warm.client import PAGE_TIMEOUT
from proxy.warm.engine import DEFAULT_SERVER

SERVER_ENV = "PYPI_PROXY_URL"  # as for ``warm``

ACCEPT = "application/json"
# The answer is one release's reasons (and its pinned dependencies'): small; more is not an answer.
MAX_ANSWER = 4 * 1024 * 1024


class ExplainError(Exception):
    """The server answered for one release, but not with an explanation (an HTTP error, bad JSON)."""


class Unreachable(Exception):
    """No answer from the server at all (refused, timed out, TLS failure): nothing else will work."""


@dataclass(frozen=True, slots=True)
class Advisory:
    id: str
    aliases: tuple[str, ...] = ()
    severity: str | None = None  # unknown | low | moderate | high | critical
    score: float | None = None  # CVSS base score
    url: str | None = None
    summary: str | None = None


@dataclass(frozen=True, slots=True)
class Exemption:
    project: str  # the pattern that matched
    until: str | None = None  # an ISO date
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Reason:
    rule: str  # vulnerabilities, malicious, cooldown, deny, allow_only, quarantined, archived, deprecated
    action: str  # warn | block
    message: str
    advisories: tuple[Advisory, ...] = ()
    exempted: Exemption | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    """One release's verdict: ``action`` what is done, ``would`` what the rules say (they differ in a dry run)."""

    project: str
    version: str
    source: str  # upstream | private
    action: str  # serve | warn | block
    would: str
    dry_run: bool
    reasons: tuple[Reason, ...]
    release: dict[str, Any]
    advisory_data: dict[str, Any]
    dependencies: tuple[Explanation, ...]
    document: dict[str, Any]  # the server's JSON, as it came

    @property
    def blocks(self) -> bool:
        """Whether the rules block it (a dry run included: it *would* block)."""
        return self.would == "block"

    @property
    def verdict(self) -> str:
        """``served``, ``served with a warning``, ``blocked`` or ``served (dry run: would block)``."""
        if self.action == "block":
            return "blocked"
        if self.would == "block":
            return "served (dry run: would block)"
        if self.would == "warn" or self.action == "warn":
            return "served with a warning"
        return "served"


@dataclass(frozen=True, slots=True)
class NotServed:
    """A 404: the index serves no such project or release (an install of it would fail)."""

    project: str
    version: str
    message: str

    verdict = "not served"
    blocks = True


def parse_explanation(document: Any) -> Explanation:
    """The endpoint's JSON as an :class:`Explanation`; ``ValueError`` naming the field when it has another shape."""
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    action, would = _text(document, "action"), _text(document, "would")
    for key, value in (("action", action), ("would", would)):
        if value not in ("serve", "warn", "block"):
            raise ValueError(f"{key}: {value!r} is not serve, warn or block")
    return Explanation(
        project=_text(document, "project"), version=_text(document, "version"),
        source=str(document.get("source") or "upstream"), action=action, would=would,
        dry_run=bool(document.get("dry_run")),
        reasons=tuple(_reason(item) for item in _list(document, "reasons")),
        release=_object(document, "release"), advisory_data=_object(document, "advisory_data"),
        dependencies=tuple(parse_explanation(item) for item in _list(document, "dependencies")),
        document=document)


def _reason(item: Any) -> Reason:
    if not isinstance(item, dict):
        raise ValueError("reasons: an entry is not an object")
    exempted = item.get("exempted")
    if exempted is not None and not isinstance(exempted, dict):
        raise ValueError("exempted: not an object")
    return Reason(
        rule=_text(item, "rule"), action=_text(item, "action"), message=str(item.get("message") or ""),
        advisories=tuple(_advisory(entry) for entry in _list(item, "advisories")),
        exempted=None if exempted is None else Exemption(
            str(exempted.get("project") or "*"), _optional(exempted.get("until")), str(exempted.get("reason") or "")))


def _advisory(item: Any) -> Advisory:
    if not isinstance(item, dict):
        raise ValueError("advisories: an entry is not an object")
    score = item.get("score")
    return Advisory(
        id=_text(item, "id"), aliases=tuple(str(alias) for alias in item.get("aliases") or ()),
        severity=_optional(item.get("severity")),
        score=float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
        url=_optional(item.get("url")), summary=_optional(item.get("summary")))


def _text(document: dict[str, Any], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key}: missing or not a string")
    return value


def _list(document: dict[str, Any], key: str) -> list[Any]:
    value = document.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{key}: not a list")
    return value


def _object(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key)
    return value if isinstance(value, dict) else {}


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)


def masked(server: str) -> str:
    """The server URL for messages: a password or token in it replaced by ``***``."""
    url = URL(server)
    return str(url.with_password("***")) if url.password else server


class ExplainClient:
    """The explain endpoint of one proxy, over one session, ``concurrency`` requests at a time.

    Credentials in the server URL (``https://user:token@host``) go as HTTP basic auth; TLS is
    verified against the system's certificate authorities, as for ``warm``.
    """

    def __init__(self, session: aiohttp.ClientSession, server: str, concurrency: int = 8) -> None:
        self._session = session
        self._server = server.rstrip("/")
        self._base = URL(self._server)
        self._limit = asyncio.Semaphore(concurrency)

    async def explain(self, project: str, version: str) -> Explanation | NotServed:
        """One release's explanation; :class:`NotServed` on a 404.

        Raises :class:`Unreachable` when the server does not answer, :class:`ExplainError`
        for any other status or an answer that is not an explanation.
        """
        url = self._base.joinpath("-", "explain", project, version)
        what = f"{project} {version}"
        async with self._limit:
            try:
                async with self._session.get(url, headers={"Accept": ACCEPT}, timeout=PAGE_TIMEOUT) as response:
                    body = await response.content.read(MAX_ANSWER + 1)
                    status, content_type = response.status, response.content_type
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                raise Unreachable(f"cannot reach {masked(self._server)}: {describe(exc)}") from None
            except aiohttp.ClientError as exc:
                raise ExplainError(f"{what}: {describe(exc)}") from None
        if status == 404:
            return NotServed(project, version, _first_line(body) or "not found")
        if status != 200:
            detail = f": {_first_line(body)}" if _first_line(body) else ""
            raise ExplainError(f"{what}: HTTP {status}{detail}")
        if len(body) > MAX_ANSWER or content_type != ACCEPT:
            raise ExplainError(f"{what}: the server answered {content_type or 'no content type'}"
                               f"{' (too large)' if len(body) > MAX_ANSWER else ''}, not an explanation; "
                               "does it have the explain endpoint (/-/explain/)?")
        return _decode(body, what)


Answer = Explanation | NotServed | ExplainError


async def explain_all(server: str, releases: Sequence[tuple[str, str]], concurrency: int = 8) -> list[Answer]:
    """Each ``(project, version)``'s answer, in order; a release the server failed on is its
    :class:`ExplainError`. Raises :class:`Unreachable` (the other requests cancelled) when the
    server does not answer: one line says so, not one per release."""
    async with aiohttp.ClientSession() as session:
        client = ExplainClient(session, server, concurrency)

        async def one(project: str, version: str) -> Answer:
            try:
                return await client.explain(project, version)
            except ExplainError as exc:
                return exc

        tasks = [asyncio.ensure_future(one(project, version)) for project, version in releases]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise


def resolve_server(given: str | None, environment: Mapping[str, str]) -> str:
    """``--server``, else ``$PYPI_PROXY_URL``, else the default; ``ValueError`` unless http(s)."""
    server = given or environment.get(SERVER_ENV) or DEFAULT_SERVER
    if not server.startswith(("http://", "https://")):
        raise ValueError(f"--server {masked(server)!r}: expected an http:// or https:// URL")
    return server


def _decode(body: bytes, what: str) -> Explanation:
    try:
        return parse_explanation(json.loads(body))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ExplainError(f"{what}: not an explanation: {exc}") from None


def _first_line(body: bytes) -> str:
    text = body[:500].decode("utf-8", "replace").strip()
    return text.splitlines()[0].strip() if text else ""


def describe(exc: BaseException) -> str:
    """An aiohttp or timeout error in one line: ``Connection refused``, ``timed out``, ..."""
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate not trusted: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        if error.errno and error.errno > 0:  # "Connection refused", not asyncio's "Connect call failed (...)"
            return os.strerror(error.errno)
        return error.strerror or str(error)  # a resolver error: "Name or service not known"
    return str(exc) or type(exc).__name__
