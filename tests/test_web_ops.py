"""Operating the proxy: /-/health, /-/metrics, and the size limit of cached public files (issue 4)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from proxy.config import Settings
from proxy.storage.ledger import Ledger
from proxy.web.keys import CATALOG
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, start_client, upload_form
from tests.fakeupstream import FakeUpstream

MakeSettings = Callable[..., Settings]
DEMO_WHEEL = "demo-1.0-py3-none-any.whl"


def samples(text: str) -> dict[str, float]:
    """Prometheus text → {'name{labels}': value}, the labels in name order (as prometheus_client
    writes them). Read with prometheus_client's own parser: the text must be well formed."""
    values = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("pypi_proxy_") and family.documentation, family
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            values[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return values


async def metrics(client: TestClient) -> dict[str, float]:
    response = await client.get("/-/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(await response.text())


async def test_health_reports_storage_upstream_and_cache(aiohttp_client: Any, upstream_settings: MakeSettings,
                                                         fake_upstream: FakeUpstream) -> None:
    client = await start_client(aiohttp_client, upstream_settings())
    response = await client.get("/-/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok" and body["storage"]["writable"] is True
    assert body["upstream"]["enabled"] is True
    assert body["upstream"]["state"] == "unknown"
    assert body["upstream"]["url"] == fake_upstream.url + "/"

    await client.get("/pypi/simple/demo/")
    await (await client.get(f"/pypi/files/demo/{DEMO_WHEEL}")).read()
    body = await (await client.get("/-/health")).json()
    assert body["upstream"]["state"] == "ok"
    assert body["cache"]["files"] == 1
    assert body["cache"]["file_bytes"] == len(fake_upstream.file(DEMO_WHEEL).content)

    await fake_upstream.stop()
    await client.get("/pypi/simple/nothing-cached/")
    response = await client.get("/-/health")
    body = await response.json()
    assert response.status == 200, "a failing upstream is reported, not unhealthy: the cache still serves"
    assert body["upstream"]["state"] == "failing"
    assert body["upstream"]["last_error"] == "unavailable"  # the class: the message is in the log (L4)


async def test_health_is_503_when_storage_is_not_writable(aiohttp_client: Any, settings: Settings) -> None:
    client = await start_client(aiohttp_client, settings)
    shutil.rmtree(settings.data_dir)
    response = await client.get("/-/health")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "failing" and "FileNotFoundError" in body["storage"]["error"]
    assert body["upstream"] == {"enabled": False}


async def test_metrics_counters_move_with_requests(aiohttp_client: Any, upstream_settings: MakeSettings,
                                                   fake_upstream: FakeUpstream) -> None:
    client = await start_client(aiohttp_client, upstream_settings())
    before = await metrics(client)
    assert before.get('pypi_proxy_upstream_requests_total{kind="page"}', 0) == 0

    for _ in range(2):
        assert (await client.get("/pypi/simple/demo/")).status == 200
    for _ in range(2):
        await (await client.get(f"/pypi/files/demo/{DEMO_WHEEL}")).read()
    await client.get("/pypi/simple/no-such-project/")

    after = await metrics(client)
    assert after['pypi_proxy_requests_total{method="GET",route="/pypi/simple/{project}/",status="200"}'] == 2
    assert after['pypi_proxy_requests_total{method="GET",route="/pypi/simple/{project}/",status="404"}'] == 1
    assert after['pypi_proxy_cache_total{kind="page",outcome="miss"}'] == 1
    assert after['pypi_proxy_cache_total{kind="page",outcome="hit"}'] == 1
    assert after['pypi_proxy_cache_total{kind="file",outcome="miss"}'] == 1
    assert after['pypi_proxy_cache_total{kind="file",outcome="hit"}'] == 1
    assert after['pypi_proxy_upstream_requests_total{kind="page"}'] == 2  # demo and no-such-project
    assert after['pypi_proxy_upstream_requests_total{kind="file"}'] == 1
    size = len(fake_upstream.file(DEMO_WHEEL).content)
    assert after['pypi_proxy_response_bytes_total{route="/pypi/files/{project}/{filename}"}'] == 2 * size
    assert after["pypi_proxy_cache_file_bytes"] == size
    assert after["pypi_proxy_upstream_up"] == 1
    count = after['pypi_proxy_request_duration_seconds_count{route="/pypi/simple/{project}/"}']
    assert count == after['pypi_proxy_request_duration_seconds_bucket{le="+Inf",route="/pypi/simple/{project}/"}'] == 3

    fake_upstream.bad.page_status = 500
    await client.get("/pypi/simple/other/")
    assert (await metrics(client))['pypi_proxy_upstream_errors_total{kind="page"}'] == 1


async def test_cached_files_stay_under_the_limit_private_files_are_never_evicted(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream, auth: Any) -> None:
    dists = [Dist(f"big{number}", "1.0", description="x" * 5000) for number in range(4)]
    for dist in dists:
        fake_upstream.add(dist, sdist=False, metadata=False)
    sizes = [len(fake_upstream.file(f"big{n}-1.0-py3-none-any.whl").content) for n in range(4)]
    # Each wheel's core metadata, which this server extracts and keeps beside it, counts too:
    # room for two wheels with their metadata, and for nothing more.
    limit = sizes[2] + sizes[3] + len(dists[2].metadata()) + len(dists[3].metadata()) + min(sizes) // 2
    client = await start_client(aiohttp_client, upstream_settings(cache={"files_max_size": limit}))
    private = Dist("mine", "1.0", description="y" * 5000)
    assert (await client.post("/pypi/", data=upload_form(private), headers=basic("alice", PASSWORD))).status == 200

    for number in range(4):
        await client.get(f"/pypi/simple/big{number}/")
        response = await client.get(f"/pypi/files/big{number}/big{number}-1.0-py3-none-any.whl")
        assert response.status == 200 and len(await response.read()) == sizes[number]
    health = await (await client.get("/-/health")).json()
    assert health["cache"]["file_bytes"] <= limit
    cached = sorted(p.name for p in (upstream_settings().data_dir / "cache" / "files").rglob("*.whl"))
    assert cached == ["big2-1.0-py3-none-any.whl", "big3-1.0-py3-none-any.whl"]  # least recently used went
    response = await client.get(f"/pypi/files/mine/{private.wheel_filename}")
    assert response.status == 200 and await response.read() == private.wheel()


def on_disk(data_dir: Path) -> tuple[int, int]:
    """(files, bytes) in the file cache, as the file system has them."""
    sizes = [p.stat().st_size for p in (data_dir / "cache" / "files").rglob("*") if p.is_file()]
    return len(sizes), sum(sizes)


async def test_the_limit_and_the_figures_hold_for_the_sum_of_server_processes(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream) -> None:
    """Issue 11 D: each worker counted and limited only what it had cached itself (disk use up to
    N times the limit) and reported its own figures. Two apps on one data directory stand for two
    workers (tests/e2e/test_service.py has real ones): the limit holds for the sum, and every
    figure (/-/health, /-/metrics, the interface's) is the same whichever answers."""
    dists = [Dist(f"big{number}", "1.0", description="x" * 5000) for number in range(6)]
    for dist in dists:
        fake_upstream.add(dist, sdist=False, metadata=False)
    wheels = [fake_upstream.file(dist.wheel_filename).content for dist in dists]
    limit = 2 * max(len(w) + len(d.metadata()) for w, d in zip(wheels, dists)) + 100
    settings = upstream_settings(cache={"files_max_size": limit})
    workers = [await start_client(aiohttp_client, settings) for _ in range(2)]
    for number, dist in enumerate(dists):
        worker = workers[number % 2]
        await worker.get(f"/pypi/simple/big{number}/")
        response = await worker.get(f"/pypi/files/big{number}/{dist.wheel_filename}")
        assert await response.read() == wheels[number]
        response = await worker.get(f"/pypi/files/big{number}/{dist.wheel_filename}.metadata")
        assert await response.read() == dist.metadata()  # extracted from the wheel, kept beside it
        files, size = on_disk(settings.data_dir)
        assert size <= limit, f"after big{number}: {size} bytes cached, limit {limit}"
    files, size = on_disk(settings.data_dir)
    assert files == 4  # the last two wheels, each with the core metadata extracted from it
    figures = [(await (await worker.get("/-/health")).json())["cache"] for worker in workers]
    assert figures[0] == figures[1]
    assert (figures[0]["files"], figures[0]["file_bytes"], figures[0]["file_limit_bytes"]) == (files, size, limit)
    for worker in workers:
        gauges = await metrics(worker)
        assert (gauges["pypi_proxy_cache_files"], gauges["pypi_proxy_cache_file_bytes"]) == (files, size)
        listed = await (await worker.get("/-/projects")).text()
        assert ("big4" in listed, "big5" in listed, "big0" in listed) == (True, True, False)
        assert "<b>2</b><span>cached projects</span>" in await (await worker.get("/")).text()


async def test_a_damaged_ledger_is_rebuilt_from_the_cached_files_at_start(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream) -> None:
    """The ledger is derived data: garbage in its place costs nothing but a scan."""
    settings = upstream_settings()
    client = await start_client(aiohttp_client, settings)
    await client.get("/pypi/simple/demo/")
    assert await (await client.get(f"/pypi/files/demo/{DEMO_WHEEL}")).read()
    await client.close()
    ledger = settings.data_dir / "cache" / "usage.sqlite3"
    for suffix in ("-wal", "-shm"):
        ledger.with_name(ledger.name + suffix).unlink(missing_ok=True)
    ledger.write_bytes(b"not a database at all")
    client = await start_client(aiohttp_client, settings)
    figures = (await (await client.get("/-/health")).json())["cache"]
    assert (figures["files"], figures["file_bytes"]) == on_disk(settings.data_dir) == (1, len(fake_upstream.file(DEMO_WHEEL).content))


async def test_cache_hits_write_nothing_to_the_ledger(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the hot path cheap: a hit is noted in memory, its use written at most once per
    TOUCH_EVERY_S seconds per file, in a batch; 100 hits cost no database write here."""
    client = await start_client(aiohttp_client, upstream_settings())
    await client.get("/pypi/simple/demo/")
    assert await (await client.get(f"/pypi/files/demo/{DEMO_WHEEL}")).read()
    writes: list[str] = []
    for name in ("record", "touch", "forget", "evict", "reconcile"):
        real = getattr(Ledger, name)
        monkeypatch.setattr(Ledger, name, lambda self, *a, _n=name, _r=real: writes.append(_n) or _r(self, *a))
    for _ in range(100):
        response = await client.get(f"/pypi/files/demo/{DEMO_WHEEL}")
        assert response.headers["X-Proxy-Cache"] == "hit" and await response.read()
    usage = client.server.app[CATALOG].upstreams.files.usage  # type: ignore[union-attr]
    await usage.flush()
    assert writes == []
