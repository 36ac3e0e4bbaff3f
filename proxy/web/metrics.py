"""Request, cache and upstream counters, kept and rendered by ``prometheus_client``.

One server process: the counters live in the app's own registry. Several (``--workers``): the
supervisor starts every worker with ``PROMETHEUS_MULTIPROC_DIR`` set to one directory
(``proxy.storage.runfiles.metrics_dir``) before anything imports the library, so each worker's
values go to its own memory-mapped files there, and whichever worker answers /-/metrics sums
them all with ``MultiProcessCollector``. Counters of a worker that stopped stay in its files,
so totals never go down while the service runs; its live gauges go with it
(``mark_process_dead``). The figures of shared storage (cache sizes, private projects) are the
same from every worker: they are read when /-/metrics is asked and given once, not summed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from proxy.core.health import BreakerState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds; from a sendfile of a cached page to a cold download of a large wheel.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # the library's switch, read when it is imported
# Method label values: any other method a client sends is counted as "other" (label values, and
# the children kept for them, stay bounded).
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
# The series one request adds to: requests, latency, bytes, and the cache outcome's (when any).
_Children = tuple[Counter, Histogram, Counter, "Counter | None"]


class Metrics:
    """Everything counted per request. Loop-thread only: the access logger is its one writer.

    ``multiprocess_dir``: the directory every worker of this service writes to (the library must
    already write there: ``MULTIPROC_ENV`` set before its import); None for one server process.
    Raises RuntimeError when the library does not write to ``multiprocess_dir``."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        if multiprocess_dir is not None and not writes_to(multiprocess_dir):
            raise RuntimeError(f"prometheus_client does not write to {multiprocess_dir}: "
                               f"set {MULTIPROC_ENV} before it is imported (proxy.ops.supervisor does)")
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series, as with workers
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        self.requests = Counter("pypi_proxy_requests", "HTTP requests by route, method and status.",
                                ("route", "method", "status"), registry=self.registry)
        self.latency = Histogram("pypi_proxy_request_duration_seconds", "Time to answer a request, body included.",
                                 ("route",), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.bytes_served = Counter("pypi_proxy_response_bytes", "Response body bytes sent, by route.",
                                    ("route",), registry=self.registry)
        self.cache = Counter("pypi_proxy_cache", "Upstream pages and files answered from the cache "
                             "(hit, revalidated, stale) or not (miss).", ("kind", "outcome"), registry=self.registry)
        self.policy_blocks = Counter("pypi_proxy_policy_blocked", "Files refused by the supply-chain policy, "
                                     "by rule and project.", ("rule", "project"), registry=self.registry)
        self._upstream: UpstreamMetrics | None = None
        # The children (one series each) a request's labels name, looked up once per set of
        # labels rather than by ``labels()`` on every request. Bounded: routes are the app's
        # patterns, methods METHODS, statuses HTTP's, cache outcomes the server's own.
        self._children: dict[tuple[str, str, int, str | None, str | None], _Children] = {}

    def observe(self, route: str, method: str, status: int, seconds: float, sent: int,
                cache_kind: str | None = None, cache_outcome: str | None = None) -> None:
        """One request answered: on ``route`` (its pattern), in ``seconds``, ``sent`` body bytes;
        ``cache_outcome`` (X-Proxy-Cache), when there is one, counted for ``cache_kind``."""
        key = (route, method if method in METHODS else "other", status, cache_kind, cache_outcome)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._children_for(*key)
        requests, latency, sent_bytes, cache = children
        requests.inc()
        latency.observe(seconds)
        sent_bytes.inc(sent)
        if cache is not None:
            cache.inc()

    def _children_for(self, route: str, method: str, status: int, cache_kind: str | None,
                      cache_outcome: str | None) -> _Children:
        return (self.requests.labels(route, method, str(status)),
                self.latency.labels(route), self.bytes_served.labels(route),
                self.cache.labels(cache_kind, cache_outcome) if cache_kind and cache_outcome else None)

    def policy_blocked(self, project: str, rules: tuple[str, ...]) -> None:
        """One file request the policy refused (PolicyBlocked), counted once per rule that applied."""
        for rule in rules:
            self.policy_blocks.labels(rule, project).inc()

    def upstream(self) -> UpstreamMetrics:
        """The upstream's counters (created on first use: none when upstream is off), to add as
        a listener of its health (``proxy.upstream.health.UpstreamHealth.add_listener``)."""
        if self._upstream is None:
            self._upstream = UpstreamMetrics(self.registry)
        return self._upstream

    def render(self, gauges: Mapping[str, tuple[str, float]]) -> bytes:
        """The exposition text: the counters (every worker's, summed) and ``gauges``, which map
        a metric name to (help text, value). Reads the workers' files: call it off the loop."""
        registry = CollectorRegistry()
        if self.multiprocess_dir is not None:
            MultiProcessCollector(registry, str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        else:
            registry.register(_Of(self.registry))
        registry.register(_Gauges(gauges))
        return generate_latest(registry)


class UpstreamMetrics:
    """Upstream's outcomes as counters, and its breaker as a gauge per state: told by
    ``UpstreamHealth`` as they happen (``proxy.core.health.HealthListener``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.fetches = Counter("pypi_proxy_upstream_requests", "Requests made to the upstream index.",
                               ("kind",), registry=registry)
        self.errors = Counter("pypi_proxy_upstream_errors", "Upstream requests that failed (after retries), by kind.",
                              ("kind",), registry=registry)
        # The last outcome of any worker ("mostrecent"): 1 unless it failed; 1 before any.
        self.up = Gauge("pypi_proxy_upstream_up", "1 unless the last upstream request failed.",
                        registry=registry, multiprocess_mode="livemostrecent")
        # Each worker has its own breaker: summed over the live ones, processes per state.
        self.breaker = Gauge("pypi_proxy_upstream_breaker_state",
                             "Server processes whose upstream circuit breaker is in this state (1 per process).",
                             ("state",), registry=registry, multiprocess_mode="livesum")
        self.openings = Counter("pypi_proxy_upstream_breaker_openings",
                                "Times the upstream circuit breaker opened (upstream failing for every project).",
                                registry=registry)
        self.storage_failures = Counter("pypi_proxy_cache_write_failures", "Upstream pages or files that could "
                                        "not be cached by a local storage failure (a full disk).", registry=registry)
        self.up.set(1)

    def fetched(self, kind: str, ok: bool) -> None:
        self.fetches.labels(kind).inc()
        if not ok:
            self.errors.labels(kind).inc()
        self.up.set(1 if ok else 0)

    def breaker_changed(self, state: BreakerState, opened: bool) -> None:
        for each in BreakerState:
            self.breaker.labels(each.value).set(1 if each is state else 0)
        if opened:
            self.openings.inc()

    def storage_failed(self, kind: str) -> None:
        self.storage_failures.inc()


def writes_to(directory: Path) -> bool:
    """Whether prometheus_client is in multiprocess mode, writing its values to ``directory``."""
    multiprocess = getattr(prometheus_values.ValueClass, "_multiprocess", False)
    return bool(multiprocess) and os.environ.get(MULTIPROC_ENV) == str(directory)


class _Of:
    """A registry's metrics, as one collector of another registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


class _Gauges:
    """Figures read for this answer (the same from every worker): given once, never summed."""

    def __init__(self, gauges: Mapping[str, tuple[str, float]]) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[Metric]:
        for name, (text, value) in sorted(self._gauges.items()):
            yield GaugeMetricFamily(name, text, value=value)
