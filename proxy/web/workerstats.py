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
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from proxy.storage.atomic import TEMP_PREFIX
from proxy.storage.runfiles import SNAPSHOT_PATTERN, run_dir, snapshot_path
from proxy.upstream.health import UpstreamFigures, UpstreamHealth
from proxy.web.keys import CATALOG, EXECUTOR, METRICS, SETTINGS
from proxy.web.metrics import Metrics

log = structlog.get_logger(__name__)
SNAPSHOT_EVERY_S = 1.0
LIVE_SNAPSHOT_S = 5 * SNAPSHOT_EVERY_S  # a worker whose snapshot is older is taken as gone


def _snapshot(metrics: Metrics, health: UpstreamHealth | None) -> dict[str, Any]:
    upstream = health.figures().to_json() if health else None
    return {"metrics": metrics.to_json(), "upstream": upstream, "at": time.time()}


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


async def combined(app: web.Application) -> tuple[Metrics, UpstreamFigures | None]:
    """This process's counters plus every other worker's last snapshot. Breaker states are per
    process: those of workers that stopped writing snapshots (gone) are left out."""
    own_metrics, upstreams = app[METRICS], app[CATALOG].upstreams
    figures = upstreams.health.figures() if upstreams else None
    if app[SETTINGS].server.workers <= 1:
        return own_metrics, figures
    data_dir = app[SETTINGS].data_dir
    others = await asyncio.get_running_loop().run_in_executor(
        app[EXECUTOR], _read_others, run_dir(data_dir), own_snapshot_path(data_dir))
    total = Metrics()
    total.add(own_metrics.to_json())
    now = time.time()
    for other in others:
        total.add(other["metrics"])
        if figures is not None and other.get("upstream"):
            figures.add(other["upstream"], live=now - other.get("at", 0.0) < LIVE_SNAPSHOT_S)
    return total, figures


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
