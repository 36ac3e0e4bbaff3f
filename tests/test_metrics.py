"""/-/metrics through prometheus_client (issue 13): well-formed text, and several server processes'
counters summed in multiprocess mode (tests/e2e/test_service.py has real workers)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

from proxy.config import Settings
from proxy.web.metrics import LATENCY_BUCKETS, MULTIPROC_ENV, Metrics
from tests.conftest import start_client
from tests.fakeupstream import FakeUpstream
from tests.test_web_ops import samples

MakeSettings = Callable[..., Settings]

FAMILIES = {  # every family the README names, and its type, as the parser reads them
    "pypi_proxy_requests": "counter", "pypi_proxy_request_duration_seconds": "histogram",
    "pypi_proxy_response_bytes": "counter", "pypi_proxy_cache": "counter",
    "pypi_proxy_upstream_requests": "counter", "pypi_proxy_upstream_errors": "counter",
    "pypi_proxy_upstream_up": "gauge", "pypi_proxy_upstream_breaker_state": "gauge",
    "pypi_proxy_upstream_breaker_openings": "counter", "pypi_proxy_cache_write_failures": "counter",
    "pypi_proxy_private_projects": "gauge", "pypi_proxy_cache_files": "gauge",
    "pypi_proxy_cache_file_bytes": "gauge", "pypi_proxy_page_cache_bytes": "gauge",
    "pypi_proxy_policy_blocked": "counter",
}


async def test_the_metrics_text_parses_with_prometheus_clients_parser(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream) -> None:
    """Every family is there once, with its type and help; a histogram has every bucket."""
    client = await start_client(aiohttp_client, upstream_settings())
    for _ in range(3):
        assert (await client.get("/pypi/simple/demo/")).status == 200
    response = await client.get("/-/metrics")
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = list(text_string_to_metric_families(await response.text()))
    assert {family.name: family.type for family in families} == FAMILIES
    assert len(families) == len(FAMILIES) and all(family.documentation for family in families)
    latency = next(f for f in families if f.name == "pypi_proxy_request_duration_seconds")
    route = "/pypi/simple/{project}/"
    bounds = [s.labels["le"] for s in latency.samples if s.name.endswith("_bucket") and s.labels["route"] == route]
    assert bounds == [repr(b) for b in LATENCY_BUCKETS] + ["+Inf"]
    requests = next(f for f in families if f.name == "pypi_proxy_requests")
    assert [(s.labels, s.value) for s in requests.samples if s.labels["route"] == route] == [
        ({"route": route, "method": "GET", "status": "200"}, 3.0)]
    assert not [s for f in families for s in f.samples if s.name.endswith("_created")]


WORKER = """
import sys
from pathlib import Path
from proxy.core.errors import UpstreamUnavailable
from proxy.upstream.health import CircuitBreaker, UpstreamHealth
from proxy.web.metrics import Metrics

directory, requests, upstream, render = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "render"
metrics = Metrics(directory)
for _ in range(requests):
    metrics.observe("/pypi/simple/{project}/", "GET", 200, 0.003, 100, "page", "hit")
if upstream != "off":
    health = UpstreamHealth(breaker=CircuitBreaker(1))
    health.add_listener(metrics.upstream())
    health.succeeded("page") if upstream == "ok" else health.failed("page", UpstreamUnavailable("down"))
if render:
    sys.stdout.write(metrics.render({"pypi_proxy_private_projects": ("Private projects.", 2)}).decode())
"""


def run_worker(directory: Path, requests: int, upstream: str, render: bool = False) -> tuple[int, str]:
    """One server process's metrics, in a process of its own in multiprocess mode: (pid, output)."""
    with subprocess.Popen(
            [sys.executable, "-c", WORKER, str(directory), str(requests), upstream, "render" if render else "-"],
            env={**os.environ, MULTIPROC_ENV: str(directory)}, stdout=subprocess.PIPE, text=True) as process:
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    return process.pid, output


def test_workers_counters_are_summed_and_a_dead_workers_live_gauges_go(tmp_path: Path) -> None:
    """The worker answering /-/metrics sums everyone's counters; breaker states count live
    processes (livesum); upstream_up is the last outcome of a live one (livemostrecent); the
    figures of shared storage are given once, never summed."""
    _, _ = run_worker(tmp_path, 3, "ok")
    failing, _ = run_worker(tmp_path, 5, "failing")
    text = samples(run_worker(tmp_path, 0, "off", render=True)[1])
    route = 'method="GET",route="/pypi/simple/{project}/",status="200"'
    assert text[f"pypi_proxy_requests_total{{{route}}}"] == 8
    assert text['pypi_proxy_response_bytes_total{route="/pypi/simple/{project}/"}'] == 800
    assert text['pypi_proxy_request_duration_seconds_bucket{le="0.005",route="/pypi/simple/{project}/"}'] == 8
    assert text['pypi_proxy_cache_total{kind="page",outcome="hit"}'] == 8
    assert (text['pypi_proxy_upstream_requests_total{kind="page"}'], text['pypi_proxy_upstream_errors_total{kind="page"}'],
            text["pypi_proxy_upstream_breaker_openings_total"]) == (2, 1, 1)
    assert (text['pypi_proxy_upstream_breaker_state{state="closed"}'],
            text['pypi_proxy_upstream_breaker_state{state="open"}']) == (1, 1)
    assert text["pypi_proxy_upstream_up"] == 0  # the failing one answered last
    assert text["pypi_proxy_private_projects"] == 2

    mark_process_dead(failing, str(tmp_path))  # as the supervisor does when a worker exits
    after = samples(run_worker(tmp_path, 0, "off", render=True)[1])
    assert after[f"pypi_proxy_requests_total{{{route}}}"] == 8  # counters never go down
    assert (after["pypi_proxy_upstream_breaker_openings_total"], after['pypi_proxy_upstream_errors_total{kind="page"}']) == (1, 1)
    assert (after['pypi_proxy_upstream_breaker_state{state="closed"}'],
            after['pypi_proxy_upstream_breaker_state{state="open"}']) == (1, 0)
    assert after["pypi_proxy_upstream_up"] == 1


def test_a_process_not_in_multiprocess_mode_refuses_a_workers_directory(tmp_path: Path) -> None:
    """Counters that no other worker could see would make every total wrong: say so at start."""
    with pytest.raises(RuntimeError, match=MULTIPROC_ENV):
        Metrics(tmp_path)


def test_each_request_counts_once_in_its_series_and_odd_methods_are_other() -> None:
    """observe keeps each set of labels' series (no labels() per request): counts land in the
    right ones, and a method clients invent is "other" (label values stay bounded)."""
    metrics = Metrics()
    route = "/pypi/simple/{project}/"
    for method, status, cache in [("GET", 200, "hit"), ("GET", 200, "hit"), ("GET", 304, "stale"),
                                  ("BREW", 405, None), ("PROPFIND", 405, None), ("HEAD", 200, "hit")]:
        metrics.observe(route, method, status, 0.002, 10, "page", cache)
    text = metrics.render({}).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = {(s.labels["method"], s.labels["status"]): s.value for s in families["pypi_proxy_requests"].samples}
    assert requests == {("GET", "200"): 2.0, ("GET", "304"): 1.0, ("other", "405"): 2.0, ("HEAD", "200"): 1.0}
    cache = {s.labels["outcome"]: s.value for s in families["pypi_proxy_cache"].samples}
    assert cache == {"hit": 3.0, "stale": 1.0}
    sent = [s.value for s in families["pypi_proxy_response_bytes"].samples if s.name.endswith("_total")]
    assert sent == [60.0]
    count = [s.value for s in families["pypi_proxy_request_duration_seconds"].samples if s.name.endswith("_count")]
    assert count == [6.0]
