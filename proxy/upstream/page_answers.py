"""Upstream's answers to page requests turned into cache records (or refused as unusable).

Anything a parser of upstream's bytes fails with means upstream's answer is unusable
(InvalidUpstreamResponse): the caller then serves its stale copy or a 502, never a 500.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from proxy.core.errors import InvalidUpstreamResponse, ProxyError
from proxy.core.merge import CacheState
from proxy.core.names import is_valid_project_name
from proxy.core.parse import parse_project_list, parse_project_page
from proxy.storage.upstream_pages import CachedPage, CachedProjectList
from proxy.upstream.responses import PageAnswer

T = TypeVar("T")
Run = Callable[..., Awaitable[Any]]  # runs a blocking function in the executor
# Below this, parsing runs on the loop: a thread hop would cost more.
_INLINE_BYTES = 64 * 1024


async def page_record(answer: PageAnswer, name: str, usable: CachedPage | None, now: float, source: str,
                      run: Run) -> tuple[CachedPage, CacheState]:
    """The record of project ``name`` after ``answer`` (fetched at ``now``, seconds since the
    epoch) to a request conditional on ``usable``: a 404 is remembered, a 304 renews ``usable``,
    a 200 is parsed (PEP 503/691). InvalidUpstreamResponse when the answer cannot be used."""
    if answer.status == 404:
        return CachedPage(404, now, upstream=source), CacheState.MISS
    if answer.status == 304:
        if usable is None:
            raise InvalidUpstreamResponse(f"upstream answered 304 to an unconditional request for {name!r}")
        return dataclasses.replace(
            usable, fetched_at=now, etag=answer.etag or usable.etag,
            last_modified=answer.last_modified or usable.last_modified,
        ), CacheState.REVALIDATED
    if len(answer.body) <= _INLINE_BYTES:  # parsing a small page is cheaper than a thread hop
        page = unusable_as_error(parse_project_page, answer.body, answer.content_type, answer.url, name)
    else:
        page = await run(unusable_as_error, parse_project_page, answer.body, answer.content_type, answer.url, name)
    content_id = hashlib.sha256(answer.body).hexdigest()[:24]
    return CachedPage(200, now, page, answer.etag, answer.last_modified, content_id, source), CacheState.MISS


async def project_list_record(answer: PageAnswer, record: CachedProjectList | None, now: float, source: str,
                              run: Run) -> tuple[CachedProjectList, CacheState]:
    """The project list after ``answer``: a 304 renews ``record``; a 200 is parsed in the executor
    (600,000 names); anything else is InvalidUpstreamResponse."""
    if answer.status == 304 and record is not None:
        return dataclasses.replace(record, fetched_at=now), CacheState.REVALIDATED
    if answer.status != 200:
        raise InvalidUpstreamResponse(f"upstream answered {answer.status} for its project list")
    names = await run(valid_names, answer.body, answer.content_type)
    return CachedProjectList(now, names, answer.etag, answer.last_modified, source), CacheState.MISS


def unusable_as_error(parse: Callable[..., T], *args: Any) -> T:
    """Run a parser of upstream's bytes: whatever it fails with, upstream's answer is unusable."""
    try:
        return parse(*args)
    except ProxyError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. RecursionError (deep JSON), ValueError (a bad URL)
        raise InvalidUpstreamResponse(f"upstream sent an unreadable page: {type(exc).__name__}: {exc}") from None


def valid_names(body: bytes, content_type: str) -> tuple[str, ...]:
    """Upstream's project list, only its valid project names (STANDARDS A2): each becomes a link
    on the root page (issue 12 L3: ``javascript:alert(1)//`` must not)."""
    names = unusable_as_error(parse_project_list, body, content_type)
    return tuple(name for name in names if is_valid_project_name(name))
