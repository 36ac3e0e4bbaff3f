"""Request, cache and upstream counters, rendered in the Prometheus text format (version 0.0.4)."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.upstream.health import BreakerState, UpstreamFigures

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds; from a sendfile of a cached page to a cold download of a large wheel.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Histogram:
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value


class Metrics:
    """Everything counted per request. Loop-thread only: the access logger is its one writer."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()  # (route, method, status)
        self.latency: dict[str, Histogram] = {}
        self.bytes_served: Counter[str] = Counter()  # by route
        self.cache: Counter[tuple[str, str]] = Counter()  # (page|file, hit|miss|revalidated|stale)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": [[*key, count] for key, count in self.requests.items()],
            "latency": {route: {"counts": h.counts, "total": h.total} for route, h in self.latency.items()},
            "bytes_served": dict(self.bytes_served),
            "cache": [[*key, count] for key, count in self.cache.items()],
        }

    def add(self, data: dict[str, Any]) -> None:
        """Add another process's counters (from ``to_json``) to these."""
        for route, method, status, count in data["requests"]:
            self.requests[(route, method, status)] += count
        for route, histogram in data["latency"].items():
            mine = self.latency.setdefault(route, Histogram())
            mine.counts = [a + b for a, b in zip(mine.counts, histogram["counts"])]
            mine.total += histogram["total"]
        self.bytes_served.update(data["bytes_served"])
        for kind, outcome, count in data["cache"]:
            self.cache[(kind, outcome)] += count

    def observe(self, route: str, method: str, status: int, seconds: float, sent: int,
                cache_kind: str | None = None, cache_outcome: str | None = None) -> None:
        self.requests[(route, method, status)] += 1
        self.latency.setdefault(route, Histogram()).observe(seconds)
        self.bytes_served[route] += sent
        if cache_kind and cache_outcome:
            self.cache[(cache_kind, cache_outcome)] += 1


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: object) -> str:
    return "{" + ",".join(f'{key}="{_label(str(value))}"' for key, value in labels.items()) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def _family(name: str, kind: str, text: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {_number(value)}" for labels, value in samples]
    return lines


def render(metrics: Metrics, upstream: UpstreamFigures | None, gauges: Mapping[str, tuple[str, float]]) -> str:
    """The exposition text; ``gauges`` maps a metric name to (help text, value)."""
    lines: list[str] = []
    lines += _family("pypi_proxy_requests_total", "counter", "HTTP requests by route, method and status.", (
        (_labels(route=route, method=method, status=status), count)
        for (route, method, status), count in sorted(metrics.requests.items())
    ))
    lines += [
        "# HELP pypi_proxy_request_duration_seconds Time to answer a request, body included.",
        "# TYPE pypi_proxy_request_duration_seconds histogram",
    ]
    for route, histogram in sorted(metrics.latency.items()):
        running = 0
        for bound, count in zip((*histogram.buckets, float("inf")), histogram.counts):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f"pypi_proxy_request_duration_seconds_bucket{_labels(route=route, le=le)} {running}")
        lines.append(f"pypi_proxy_request_duration_seconds_sum{_labels(route=route)} {histogram.total!r}")
        lines.append(f"pypi_proxy_request_duration_seconds_count{_labels(route=route)} {running}")
    lines += _family("pypi_proxy_response_bytes_total", "counter", "Response body bytes sent, by route.", (
        (_labels(route=route), count) for route, count in sorted(metrics.bytes_served.items())
    ))
    lines += _family("pypi_proxy_cache_total", "counter",
                     "Upstream pages and files answered from the cache (hit, revalidated, stale) or not (miss).", (
        (_labels(kind=kind, outcome=outcome), count) for (kind, outcome), count in sorted(metrics.cache.items())
    ))
    if upstream is not None:
        lines += _upstream_lines(upstream)
    for name, (text, value) in sorted(gauges.items()):
        lines += _family(name, "gauge", text, [("", value)])
    return "\n".join(lines) + "\n"


def _upstream_lines(upstream: UpstreamFigures) -> list[str]:
    lines = _family("pypi_proxy_upstream_requests_total", "counter", "Requests made to the upstream index.", (
        (_labels(kind=kind), count) for kind, count in sorted(upstream.fetches.items())
    ))
    lines += _family("pypi_proxy_upstream_errors_total", "counter",
                     "Upstream requests that failed (after retries), by kind.", (
        (_labels(kind=kind), count) for kind, count in sorted(upstream.errors.items())
    ))
    lines += _family("pypi_proxy_upstream_up", "gauge", "1 unless the last upstream request failed.",
                     [("", 1 if upstream.up else 0)])
    lines += _family("pypi_proxy_upstream_breaker_state", "gauge",
                     "Server processes whose upstream circuit breaker is in this state (1 per process).", (
        (_labels(state=state.value), upstream.breaker_states[state.value]) for state in BreakerState
    ))
    lines += _family("pypi_proxy_upstream_breaker_openings_total", "counter",
                     "Times the upstream circuit breaker opened (upstream failing for every project).",
                     [("", upstream.breaker_openings)])
    lines += _family("pypi_proxy_cache_write_failures_total", "counter",
                     "Upstream pages or files that could not be cached by a local storage failure (a full disk).",
                     [("", upstream.storage_failures)])
    return lines
