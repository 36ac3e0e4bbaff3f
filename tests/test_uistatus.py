"""The status page's view of upstream's circuit breaker and of local caching failures (issue 11)."""

from __future__ import annotations

from proxy.core.errors import UpstreamUnavailable
from proxy.ui import status as uistatus
from proxy.upstream.health import CircuitBreaker, UpstreamHealth

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_status_shows_the_breaker_open_since_with_its_failures_and_storage_trouble() -> None:
    clock = Clock()
    health = UpstreamHealth(breaker=CircuitBreaker(2, clock), clock=clock)
    closed = uistatus.upstream_status(health.report(), "https://pypi.org/simple/", now=T0)
    assert (closed.breaker, closed.breaker_badge, closed.breaker_failures) == ("closed", "ok", "0 of 2")
    assert (closed.breaker_since, closed.storage_failures, closed.last_storage_failure) == ("never", 0, None)

    health.failed("page", UpstreamUnavailable("refused"))
    health.failed("list", UpstreamUnavailable("refused again"))
    health.storage_failed("file", OSError(28, "No space left on device"))
    status = uistatus.upstream_status(health.report(), "https://pypi.org/simple/", now=T0 + 120)
    assert (status.breaker, status.breaker_badge, status.breaker_openings) == ("open", "failing", 1)
    assert status.breaker_since == "2023-11-14 22:13:20 UTC (2 min ago)"
    assert (status.breaker_failures, status.breaker_error) == ("2 of 2", "unavailable")
    assert status.storage_failures == 1
    assert status.last_storage_failure == "2023-11-14 22:13:20 UTC (2 min ago): ENOSPC: No space left on device"

    health.breaker.start_probe()
    assert uistatus.upstream_status(health.report(), "u", now=T0).breaker_badge == "unknown"  # half-open


def test_a_breaker_that_never_opens_says_so() -> None:
    health = UpstreamHealth(breaker=CircuitBreaker(0))
    assert uistatus.upstream_status(health.report(), "u", now=T0).breaker_failures == "never opens"
