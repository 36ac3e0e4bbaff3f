"""The status page's view model: upstream health and cache use, built by pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxy.core.health import BreakerState, UpstreamReport
from proxy.ui.views import Site, ago, human_bytes, percent, when


@dataclass(frozen=True, slots=True)
class UpstreamStatus:
    url: str
    state: str  # "ok", "failing" or "unknown"
    last_success: str
    last_failure: str
    fetches: tuple[tuple[str, int, int], ...]  # (kind, fetches, errors)
    recent_errors: tuple[tuple[str, str, str], ...]  # (when, kind, error class), newest first
    breaker: str  # "closed", "open" or "half-open"
    breaker_badge: str  # the badge's class: ok, failing, unknown
    breaker_since: str
    breaker_failures: str  # "2 of 5 consecutive failures" (before it opens)
    breaker_openings: int
    breaker_error: str | None  # the last failure's class
    storage_failures: int  # caching upstream data failed locally (a full disk): not upstream's fault
    last_storage_failure: str | None  # when, and its class


@dataclass(frozen=True, slots=True)
class Gauge:
    label: str
    used: str
    limit: str | None
    percent: int | None


@dataclass(frozen=True, slots=True)
class StatusView:
    site: Site
    storage_error: str | None
    private_projects: int
    upstream: UpstreamStatus | None  # None: upstream is off
    cached_files: int
    gauges: tuple[Gauge, ...]
    advisories: Mapping[str, Any] | None = None  # ``proxy.web.ops.advisory_figures``


_BREAKER_BADGES = {BreakerState.CLOSED: "ok", BreakerState.OPEN: "failing", BreakerState.HALF_OPEN: "unknown"}


def upstream_status(health: UpstreamReport, url: str, now: float) -> UpstreamStatus:
    """Upstream's part of the status page. Errors by their class only, as /-/health shows them
    (``health.error_class``): the page answers anyone; the log has the messages."""
    def moment(at: float | None) -> str:
        return f"{when(at)} ({ago(at, now)})" if at is not None else "never"

    kinds = sorted(set(health.fetches) | set(health.errors))
    breaker = health.breaker
    storage = health.last_storage_failure
    return UpstreamStatus(
        url, health.state, moment(health.last_success), moment(health.last_failure),
        tuple((kind, health.fetches.get(kind, 0), health.errors.get(kind, 0)) for kind in kinds),
        tuple((when(e.at), e.kind, e.error_class) for e in reversed(health.recent_errors)),
        breaker.state.value, _BREAKER_BADGES[breaker.state], moment(breaker.since),
        f"{breaker.consecutive_failures} of {breaker.threshold}" if breaker.threshold else "never opens",
        breaker.openings, breaker.last_error_class, health.storage_failures,
        f"{moment(storage.at)}: {storage.error_class}" if storage else None,
    )


def status_view(site: Site, *, storage_error: str | None, private_projects: int,
                upstream: UpstreamStatus | None, cache: Mapping[str, Any], page_cache_limit: int,
                advisories: Mapping[str, Any] | None = None) -> StatusView:
    """``cache`` holds the figures /-/health reports (empty when upstream is off)."""
    gauges: list[Gauge] = []
    if cache:
        limit = cache["file_limit_bytes"]
        gauges.append(Gauge("Cached files", human_bytes(cache["file_bytes"]),
                            human_bytes(limit) if limit is not None else None, percent(cache["file_bytes"], limit)))
        gauges.append(Gauge("Page cache", human_bytes(cache["page_cache_bytes"]), human_bytes(page_cache_limit),
                            percent(cache["page_cache_bytes"], page_cache_limit)))
    return StatusView(site, storage_error, private_projects, upstream, int(cache.get("files", 0)), tuple(gauges),
                      advisories)
