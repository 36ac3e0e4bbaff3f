"""For operators: ``/-/health`` (is this instance usable?) and ``/-/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from proxy.core.health import FeedStatus, UpstreamEvent, UpstreamReport
from proxy.core.timestamps import iso_z
from proxy.repository.catalog import Catalog
from proxy.web import metrics as prometheus
from proxy.web.keys import ADVISORIES, CATALOG, DATA_DIR_PROBE, EXECUTOR, METRICS

NO_STORE = {"Cache-Control": "no-store"}


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """"uvloop" or "asyncio": the kind of event loop ``loop`` is (``[server] event_loop``)."""
    return "uvloop" if any(kind.__module__.startswith("uvloop") for kind in type(loop).__mro__) else "asyncio"


async def storage_error(app: web.Application) -> str | None:
    """None while the data directory takes writes, else the error (``DataDirProbe.writable``)."""
    return await asyncio.get_running_loop().run_in_executor(app[EXECUTOR], app[DATA_DIR_PROBE].writable)


def _when(moment: float | None) -> str | None:
    return iso_z(datetime.fromtimestamp(moment, timezone.utc)) if moment is not None else None


async def cache_figures(catalog: Catalog) -> dict[str, Any]:
    """The caches' figures, the same whichever server process answers: the file cache's come from
    the ledger all processes share (``proxy.storage.ledger``), the page cache's from its diskcache."""
    upstreams = catalog.upstreams
    if upstreams is None:
        return {}
    totals = await upstreams.files.usage.totals()
    return {
        "files": totals.files,
        "file_bytes": totals.bytes,
        "file_limit_bytes": upstreams.files.max_size,
        "page_cache_bytes": await upstreams.index.cache_bytes(),
    }


def _event(event: UpstreamEvent | None) -> dict[str, Any] | None:
    return {"at": _when(event.at), "kind": event.kind, "error": event.error_class} if event else None


def upstream_health(health: UpstreamReport, url: str) -> dict[str, Any]:
    """The ``upstream`` part of /-/health: the last answers, and the circuit breaker.

    Errors are told by their class only (``health.error_class``: ``timeout``, ``refused``, ...):
    their messages may name internal hosts, addresses and paths, and this answers anyone (issue
    12 L4). The log has each in full (``upstream_failed``, ``upstream_download_failed``, ...).
    ``url`` is the configured index, without credentials or query, as the home page shows it.
    ``health``: the answering process's (each has its own breaker)."""
    last_error = health.recent_errors[-1] if health.recent_errors else None
    breaker = health.breaker
    return {
        "url": url,
        "state": health.state,
        "last_success": _when(health.last_success),
        "last_failure": _when(health.last_failure),
        "last_error": last_error.error_class if last_error else None,
        "breaker": {
            "state": breaker.state.value,
            "since": _when(breaker.since),
            "consecutive_failures": breaker.consecutive_failures,
            "threshold": breaker.threshold,
            "openings": breaker.openings,
            "last_error": breaker.last_error_class,
        },
    }


def feed_status(app: web.Application) -> FeedStatus | None:
    """The advisory feed's status, or None while no advisory rule is on."""
    feed = app.get(ADVISORIES)
    return feed.status() if feed is not None else None


def advisory_figures(status: FeedStatus | None) -> dict[str, Any] | None:
    """How old the advisory data is and where it comes from (None while no advisory rule is on):
    for /-/health, /-/explain, the status page and metrics."""
    if status is None:
        return None
    return {"source": status.source, "records": status.records, "last_error": status.last_error,
            "fetched_at": iso_z(datetime.fromtimestamp(status.fetched_at, timezone.utc)) if status.fetched_at else None,
            "age_s": round(status.age_s, 1) if status.age_s is not None else None}


async def health(request: web.Request) -> web.Response:
    """200 when storage is writable, else 503; upstream trouble is reported but is not unhealthy:
    cached pages and files are still served. So are failures to cache upstream data locally
    (``storage.cache_write_failures``, e.g. a full disk), which are never counted against upstream."""
    app = request.app
    error = await storage_error(app)
    catalog = app[CATALOG]
    upstreams = catalog.upstreams
    upstream: dict[str, Any] = {"enabled": upstreams is not None}
    storage: dict[str, Any] = {"writable": error is None, "error": error}
    if upstreams is not None:
        report = upstreams.health.report()
        upstream |= upstream_health(report, upstreams.url)
        storage |= {"cache_write_failures": report.storage_failures,
                    "last_cache_write_failure": _event(report.last_storage_failure)}
    _, private_names = await catalog.private.project_names()
    body = {
        "status": "ok" if error is None else "failing",
        "storage": storage,
        "upstream": upstream,
        "private_projects": len(private_names),
        "cache": await cache_figures(catalog),
        "advisories": advisory_figures(feed_status(app)),
        "event_loop": loop_name(asyncio.get_running_loop()),
    }
    return web.json_response(body, status=200 if error is None else 503, headers=NO_STORE)


async def metrics(request: web.Request) -> web.Response:
    app = request.app
    catalog = app[CATALOG]
    _, private_names = await catalog.private.project_names()
    gauges: dict[str, tuple[str, float]] = {
        "pypi_proxy_private_projects": ("Private projects.", len(private_names)),
    }
    upstreams = catalog.upstreams
    if upstreams is not None:
        figures = await cache_figures(catalog)
        gauges |= {
            "pypi_proxy_cache_files": ("Cached public files.", figures["files"]),
            "pypi_proxy_cache_file_bytes": ("Bytes of cached public files.", figures["file_bytes"]),
            "pypi_proxy_page_cache_bytes": ("Bytes of the upstream page cache on disk.", figures["page_cache_bytes"]),
        }
        if upstreams.files.max_size is not None:
            gauges["pypi_proxy_cache_file_limit_bytes"] = ("The limit of cached public files.", upstreams.files.max_size)
    if (advisories := advisory_figures(feed_status(app))) is not None:
        gauges["pypi_proxy_advisory_records"] = ("OSV records in the advisory data.", advisories["records"])
        if advisories["age_s"] is not None:
            gauges["pypi_proxy_advisory_data_age_seconds"] = ("Seconds since the advisory source last confirmed "
                                                             "the data.", advisories["age_s"])
    # Off the loop: with workers it reads their files; alone, ~1 ms of formatting per 100 series.
    text = await asyncio.get_running_loop().run_in_executor(app[EXECUTOR], app[METRICS].render, gauges)
    return web.Response(body=text, headers={**NO_STORE, "Content-Type": prometheus.CONTENT_TYPE})
