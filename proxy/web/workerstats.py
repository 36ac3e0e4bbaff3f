"""With several server processes, each one's counters are summed into every /-/metrics answer.

Every worker writes a snapshot of its counters to ``<data_dir>/run/metrics-<pid>.json`` every
second and when it stops; a worker answering /-/metrics adds the others' snapshots to its own
live counters. Snapshots of stopped workers stay, so totals never go down while the service
runs; the supervisor clears them when it starts.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from proxy.atomic import TEMP_PREFIX
from proxy.health import UpstreamHealth
from proxy.metrics import Metrics
from proxy.runfiles import SNAPSHOT_PATTERN, run_dir, snapshot_path
from proxy.web.keys import CATALOG, EXECUTOR, METRICS, SETTINGS

log = structlog.get_logger(__name__)
SNAPSHOT_EVERY_S = 1.0


def _snapshot(metrics: Metrics, health: UpstreamHealth | None) -> dict[str, Any]:
    upstream = {"fetches": dict(health.fetches), "errors": dict(health.errors)} if health else None
    return {"metrics": metrics.to_json(), "upstream": upstream}


def _write(path: Path, data: dict[str, Any]) -> None:
    """Replace the snapshot by rename, without fsync: it is rewritten every second anyway."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}")
    temp.write_text(json.dumps(data))
    os.replace(temp, path)


def _read_others(directory: Path, own: Path) -> list[dict[str, Any]]:
    found = []
    for path in directory.glob(SNAPSHOT_PATTERN):
        if path != own:
            try:
                found.append(json.loads(path.read_bytes()))
            except (OSError, ValueError):
                continue  # being replaced right now: counted at the next scrape
    return found


def own_snapshot_path(data_dir: Path) -> Path:
    return snapshot_path(data_dir)


async def combined(app: web.Application) -> tuple[Metrics, UpstreamHealth | None]:
    """This process's counters plus every other worker's last snapshot."""
    own_metrics, upstreams = app[METRICS], app[CATALOG].upstreams
    own_health = upstreams.health if upstreams else None
    if app[SETTINGS].server.workers <= 1:
        return own_metrics, own_health
    data_dir = app[SETTINGS].data_dir
    others = await asyncio.get_running_loop().run_in_executor(
        app[EXECUTOR], _read_others, run_dir(data_dir), own_snapshot_path(data_dir))
    total = Metrics()
    total.add(own_metrics.to_json())
    health = UpstreamHealth() if own_health else None
    if health and own_health:
        health.fetches.update(own_health.fetches)
        health.errors.update(own_health.errors)
        health.last_success, health.last_failure = own_health.last_success, own_health.last_failure
    for other in others:
        total.add(other["metrics"])
        if health and other.get("upstream"):
            health.fetches.update(other["upstream"]["fetches"])
            health.errors.update(other["upstream"]["errors"])
    return total, health


async def snapshots(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: write this worker's snapshot periodically and once more at the end."""
    if app[SETTINGS].server.workers <= 1:
        yield
        return
    path = own_snapshot_path(app[SETTINGS].data_dir)
    loop = asyncio.get_running_loop()

    async def write() -> None:
        upstreams = app[CATALOG].upstreams
        data = _snapshot(app[METRICS], upstreams.health if upstreams else None)
        await loop.run_in_executor(app[EXECUTOR], _write, path, data)

    async def every_few_seconds() -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_EVERY_S)
            try:
                await write()
            except OSError as exc:
                log.warning("metrics_snapshot_failed", error=str(exc))

    task = asyncio.create_task(every_few_seconds())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    try:
        await write()
    except OSError as exc:
        log.warning("metrics_snapshot_failed", error=str(exc))
