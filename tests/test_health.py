"""The upstream's health and its circuit breaker (issue 11), driven by an injected clock."""

from __future__ import annotations

import pytest

from proxy.core.errors import InvalidUpstreamResponse, UpstreamTimeout, UpstreamUnavailable
from proxy.upstream.health import BreakerState, CircuitBreaker, UpstreamHealth


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_consecutive_failures_and_a_success_resets_the_count() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, clock)
    breaker.failed("a")
    breaker.failed("b")
    breaker.succeeded()  # not consecutive any more
    assert (breaker.state, breaker.consecutive_failures, breaker.since) == (BreakerState.CLOSED, 0, None)
    for number in range(1, 3):
        clock.now += 1
        breaker.failed(f"refused {number}")
        assert breaker.state is BreakerState.CLOSED
    clock.now += 1
    breaker.failed("refused 3")
    assert breaker.state is BreakerState.OPEN
    assert (breaker.since, breaker.openings, breaker.consecutive_failures) == (1003.0, 1, 3)
    assert breaker.last_error == "refused 3"


def test_probe_half_opens_a_failed_probe_reopens_keeping_since_a_success_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, clock)
    assert not breaker.start_probe(), "nothing to probe while closed"
    breaker.failed("timed out")
    assert (breaker.state, breaker.since) == (BreakerState.OPEN, 1000.0)
    clock.now = 1005.0
    assert breaker.start_probe()
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.start_probe(), "one probe at a time"
    breaker.failed("still timed out")
    assert (breaker.state, breaker.since, breaker.openings) == (BreakerState.OPEN, 1000.0, 1)
    clock.now = 1010.0
    assert breaker.start_probe()
    breaker.succeeded()
    assert (breaker.state, breaker.since, breaker.consecutive_failures) == (BreakerState.CLOSED, 1010.0, 0)
    breaker.failed("again")
    assert (breaker.state, breaker.openings) == (BreakerState.OPEN, 2)


def test_a_late_success_while_open_closes_without_a_probe() -> None:
    """A refresh still in flight when the breaker opened may come back fine: one success is enough."""
    breaker = CircuitBreaker(1, Clock())
    breaker.failed("x")
    breaker.succeeded()
    assert breaker.closed


def test_upstream_is_answering_after_a_success_until_the_next_failure() -> None:
    """What decides whether a request for a stale page waits for upstream at all."""
    breaker = CircuitBreaker(5, Clock())
    assert not breaker.answering, "not known before the first answer"
    breaker.succeeded()
    assert breaker.answering
    breaker.failed("refused")
    assert not breaker.answering and breaker.closed
    breaker.succeeded()
    assert breaker.answering


def test_threshold_zero_never_opens() -> None:
    breaker = CircuitBreaker(0, Clock())
    for _ in range(100):
        breaker.failed("x")
    assert breaker.closed and breaker.consecutive_failures == 100


@pytest.mark.parametrize(("kind", "counts"), [("page", True), ("list", True), ("probe", True), ("file", False)])
def test_index_fetches_drive_the_breaker_files_do_not(kind: str, counts: bool) -> None:
    """Files often live on another host (a CDN, STANDARDS G2): their failures say nothing of the index."""
    health = UpstreamHealth(breaker=CircuitBreaker(1, Clock()), clock=Clock())
    health.failed(kind, UpstreamUnavailable("refused"))
    assert health.breaker.closed is not counts
    assert health.errors[kind] == 1 and health.state == "failing"


@pytest.mark.parametrize("error", [UpstreamUnavailable("refused"), UpstreamTimeout("slow"),
                                   InvalidUpstreamResponse("garbage")])
def test_attempt_counts_every_upstream_error_as_one_failed_fetch(error: Exception) -> None:
    health = UpstreamHealth(breaker=CircuitBreaker(1, Clock()), clock=Clock())
    with pytest.raises(type(error)), health.attempt("page"):
        raise error
    assert (health.fetches["page"], health.errors["page"], health.breaker.state) == (1, 1, BreakerState.OPEN)
    with health.attempt("page"):
        pass
    assert (health.fetches["page"], health.errors["page"], health.breaker.state) == (2, 1, BreakerState.CLOSED)


def test_attempt_ignores_errors_that_are_not_upstreams() -> None:
    """A bug or a cancelled client is neither a success nor a failure of upstream."""
    health = UpstreamHealth(clock=Clock())
    with pytest.raises(KeyError), health.attempt("page"):
        raise KeyError("bug")
    assert not health.fetches and health.state == "unknown"


def test_storage_failures_are_kept_apart_from_upstreams() -> None:
    clock = Clock()
    health = UpstreamHealth(breaker=CircuitBreaker(1, clock), clock=clock)
    health.succeeded("page")
    health.storage_failed("file", OSError(28, "No space left on device"))
    assert health.state == "ok" and health.breaker.closed and not health.errors
    assert health.storage_failures == 1
    assert health.last_storage_failure is not None
    assert (health.last_storage_failure.kind, health.last_storage_failure.message) == (
        "file", "[Errno 28] No space left on device")


class Recorder:
    """A HealthListener that keeps what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def fetched(self, kind: str, ok: bool) -> None:
        self.events.append(("fetched", kind, ok))

    def breaker_changed(self, state: BreakerState, opened: bool) -> None:
        self.events.append(("breaker", state, opened))

    def storage_failed(self, kind: str) -> None:
        self.events.append(("storage", kind))


def test_listeners_are_told_every_outcome_and_every_change_of_the_breaker_once() -> None:
    """The metrics count upstream's outcomes as they happen (one event each), and see the
    breaker's every move, the probe's too: open is counted once per opening."""
    clock = Clock()
    health = UpstreamHealth(breaker=CircuitBreaker(2, clock), clock=clock)
    recorder = Recorder()
    health.add_listener(recorder)
    health.succeeded("file")
    health.failed("page", UpstreamUnavailable("x"))
    health.failed("list", UpstreamTimeout("x"))  # the second in a row: opens
    health.storage_failed("page", OSError(28, "full"))
    assert health.breaker.start_probe()
    with pytest.raises(UpstreamUnavailable), health.attempt("probe"):
        raise UpstreamUnavailable("still down")
    health.breaker.start_probe()
    with health.attempt("probe"):
        pass
    assert recorder.events == [
        ("breaker", BreakerState.CLOSED, False),  # the state when added
        ("fetched", "file", True), ("fetched", "page", False), ("fetched", "list", False),
        ("breaker", BreakerState.OPEN, True), ("storage", "page"),
        ("breaker", BreakerState.HALF_OPEN, False), ("fetched", "probe", False), ("breaker", BreakerState.OPEN, False),
        ("breaker", BreakerState.HALF_OPEN, False), ("fetched", "probe", True), ("breaker", BreakerState.CLOSED, False),
    ]
    report = health.report()
    assert (report.fetches, report.errors) == ({"file": 1, "page": 1, "list": 1, "probe": 2},
                                               {"page": 1, "list": 1, "probe": 1})
    assert (report.breaker.state, report.breaker.openings, report.storage_failures) == (BreakerState.CLOSED, 1, 1)
