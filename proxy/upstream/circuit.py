"""The upstream index's open circuit (``proxy.upstream.pages``): the error a request meets while
it is open, and the probe that asks upstream until an answer closes it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timezone

import structlog

from proxy.config import UpstreamSettings
from proxy.core.errors import UpstreamCircuitOpen, UpstreamError
from proxy.core.timestamps import iso_z
from proxy.upstream.client import Upstream
from proxy.upstream.responses import masked

log = structlog.get_logger(__name__)


def circuit_open(upstream: Upstream, probe_every: float) -> UpstreamCircuitOpen:
    """The error for a request that would ask ``upstream`` while its circuit is open: since when
    it fails, the class of its last error, and how often it is probed (seconds)."""
    breaker = upstream.health.breaker
    since = iso_z(datetime.fromtimestamp(breaker.since, timezone.utc)) if breaker.since else "recently"
    return UpstreamCircuitOpen(
        f"upstream {masked(upstream.base)} is failing since {since} ({breaker.last_error_class}); "
        f"it is not asked again until it answers a probe (every {probe_every:g} s)",
        breaker.since, breaker.last_error,
    )


async def probe_until_closed(upstream: Upstream, settings: UpstreamSettings, project: Callable[[], str]) -> None:
    """Ask upstream for the page of ``project()`` every ``breaker_probe_every`` seconds (one
    attempt, within the page deadline) until an answer closes the circuit; any HTTP answer but
    5xx counts."""
    breaker = upstream.health.breaker
    while not breaker.closed:
        await asyncio.sleep(settings.breaker_probe_every)
        if not breaker.start_probe():
            continue  # closed meanwhile, by a refresh that was still in flight
        url = upstream.project_url(project())
        try:
            with upstream.health.attempt("probe"):
                await upstream.fetch_page(url, retries=0, deadline=settings.page_deadline)
        except UpstreamError as exc:
            log.info("upstream_probe_failed", url=masked(url), error=str(exc))
