"""Operating the proxy: /-/health, /-/metrics, and the size limit of cached public files (issue 4)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from proxy.filecache import CacheUsage, CachedEntry
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, start_client, upload_form
from tests.fakeupstream import FakeUpstream

MakeSettings = Callable[..., Settings]
DEMO_WHEEL = "demo-1.0-py3-none-any.whl"


def samples(text: str) -> dict[str, float]:
    """Prometheus text → {'name{labels}': value}; also checks every line is well formed."""
    values = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) pypi_proxy_\w+ .+$", line), line
            continue
        match = re.match(r'^(pypi_proxy_\w+(?:\{.*\})?) (-?[0-9.e+]+)$', line)
        assert match, line
        values[match.group(1)] = float(match.group(2))
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
    assert after['pypi_proxy_requests_total{route="/pypi/simple/{project}/",method="GET",status="200"}'] == 2
    assert after['pypi_proxy_requests_total{route="/pypi/simple/{project}/",method="GET",status="404"}'] == 1
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
    assert count == after['pypi_proxy_request_duration_seconds_bucket{route="/pypi/simple/{project}/",le="+Inf"}'] == 3

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


@pytest.mark.parametrize(("limit", "evicted"), [(None, []), (30, []), (20, ["mid"]), (0, ["mid", "new", "old"])])
def test_eviction_order(limit: int | None, evicted: list[str]) -> None:
    usage = CacheUsage()
    usage.load([CachedEntry(("p", "new"), 10, 300.0), CachedEntry(("p", "old"), 10, 100.0),
                CachedEntry(("p", "mid"), 10, 200.0)])
    usage.used(("p", "old"), 10)
    assert [name for _, name in usage.evict(limit)] == evicted
    assert usage.total_bytes == 30 - 10 * len(evicted)


def test_a_pinned_file_is_never_evicted() -> None:
    usage = CacheUsage()
    usage.load([CachedEntry(("p", "a"), 10, 1.0), CachedEntry(("p", "b"), 10, 2.0)])
    with usage.pinned(("p", "a")):
        assert usage.evict(0) == [("p", "b")]
    assert usage.total_bytes == 10
    assert usage.evict(0) == [("p", "a")]


def test_metrics_of_several_workers_add_up() -> None:
    """--workers: each worker's snapshot (to_json) is added into the answer of the one scraped."""
    from proxy.metrics import Metrics, render

    first, second = Metrics(), Metrics()
    first.observe("/r", "GET", 200, 0.002, 10, "page", "hit")
    second.observe("/r", "GET", 200, 0.3, 5, "page", "miss")
    second.observe("/r", "GET", 404, 0.001, 1)
    total = Metrics()
    for part in (first, second):
        total.add(json.loads(json.dumps(part.to_json())))
    text = samples(render(total, None, {}))
    assert text['pypi_proxy_requests_total{route="/r",method="GET",status="200"}'] == 2
    assert text['pypi_proxy_requests_total{route="/r",method="GET",status="404"}'] == 1
    assert text['pypi_proxy_response_bytes_total{route="/r"}'] == 16
    assert text['pypi_proxy_cache_total{kind="page",outcome="hit"}'] == 1
    assert text['pypi_proxy_request_duration_seconds_count{route="/r"}'] == 3
    assert text['pypi_proxy_request_duration_seconds_bucket{route="/r",le="0.0025"}'] == 2
