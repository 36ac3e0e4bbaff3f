"""What the proxy remembers about its upstream's recent behaviour, and the circuit breaker built
on it: for /-/health, metrics, the UI, and for deciding whether upstream is worth asking at all.

Local storage failures while caching upstream data (a full disk) are kept apart: they are not
upstream's fault and never count against it.
"""

from __future__ import annotations

import errno
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog

from proxy.core.errors import (
    IntegrityError,
    InvalidUpstreamResponse,
    UpstreamCircuitOpen,
    UpstreamError,
    UpstreamRefused,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy.core.health import BreakerReport, BreakerState, HealthListener, UpstreamEvent, UpstreamReport

__all__ = ["BreakerState", "CircuitBreaker", "UpstreamEvent", "UpstreamHealth", "error_class"]
log = structlog.get_logger(__name__)
# Fetches of the index itself: their outcomes drive the breaker. Files often live on another
# host (a CDN), so their failures are counted but say nothing about the index.
INDEX_KINDS = frozenset({"page", "list", "probe"})


# Most specific first: what a failure is, in a word (``error_class``).
_CLASSES: tuple[tuple[type[BaseException], str], ...] = (
    (UpstreamCircuitOpen, "circuit_open"), (UpstreamTimeout, "timeout"), (UpstreamUnavailable, "unavailable"),
    (UpstreamRefused, "refused"), (IntegrityError, "integrity"), (InvalidUpstreamResponse, "invalid_response"),
)


def error_class(error: BaseException) -> str:
    """What kind of failure ``error`` is, in words safe to show anyone (issue 12 L4): no URL, host,
    address or path, which the message (kept for the log) may hold. Upstream's: ``timeout``,
    ``unavailable`` (unreachable, 5xx, broken off), ``refused`` (a URL or file the policy does not
    fetch), ``integrity`` (bytes unlike the listing's), ``invalid_response``, ``circuit_open``;
    a local storage failure: its errno, named and explained (``ENOSPC: No space left on device``)."""
    for kind, name in _CLASSES:
        if isinstance(error, kind):
            return name
    code = error.errno if isinstance(error, OSError) else None
    if code is not None and code in errno.errorcode:
        return f"{errno.errorcode[code]}: {os.strerror(code)}"
    return "upstream_error" if isinstance(error, UpstreamError) else type(error).__name__


class CircuitBreaker:
    """Opens after ``threshold`` consecutive index failures (0: never); one success closes it.

    While it is not closed, page requests do not ask upstream; a background probe does
    (``start_probe``, OPEN -> HALF_OPEN), and its outcome closes or reopens it. ``since`` is
    when upstream started failing (kept across probe attempts) or, when closed, when it recovered.
    Loop-thread only; times come from ``clock`` (unix seconds) so tests can drive it.
    """

    def __init__(self, threshold: int = 5, clock: Callable[[], float] = time.time) -> None:
        self.threshold = threshold
        # Told of every change of state: (the new state, whether it is an opening).
        self.on_change: Callable[[BreakerState, bool], None] = lambda state, opened: None
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.since: float | None = None  # None: never opened
        self.consecutive_failures = 0
        self.openings = 0
        self.last_error: str | None = None
        self.last_error_class: str | None = None
        self._answered = False

    @property
    def closed(self) -> bool:
        return self.state is BreakerState.CLOSED

    @property
    def answering(self) -> bool:
        """Whether upstream is known to answer right now: its last index request in this process
        succeeded (False before the first one)."""
        return self._answered and self.consecutive_failures == 0

    def succeeded(self) -> None:
        self._answered = True
        self.consecutive_failures = 0
        if not self.closed:
            down_s = self._clock() - (self.since or self._clock())
            self.state, self.since = BreakerState.CLOSED, self._clock()
            self.on_change(self.state, False)
            log.info("upstream_circuit_closed", down_s=round(down_s, 1))

    def failed(self, message: str, error_class: str = "error") -> None:
        self.consecutive_failures += 1
        self.last_error = message
        self.last_error_class = error_class
        if self.state is BreakerState.HALF_OPEN:
            self.state = BreakerState.OPEN
            self.on_change(self.state, False)
        elif self.closed and self.threshold and self.consecutive_failures >= self.threshold:
            self.state, self.since = BreakerState.OPEN, self._clock()
            self.openings += 1
            self.on_change(self.state, True)
            log.warning("upstream_circuit_opened", consecutive_failures=self.consecutive_failures,
                        last_error=message)

    def start_probe(self) -> bool:
        """OPEN -> HALF_OPEN; False (nothing to probe) in any other state."""
        if self.state is not BreakerState.OPEN:
            return False
        self.state = BreakerState.HALF_OPEN
        self.on_change(self.state, False)
        return True

    def report(self) -> BreakerReport:
        return BreakerReport(self.state, self.since, self.consecutive_failures, self.threshold, self.openings,
                             self.last_error_class)


class UpstreamHealth:
    """Counts fetches and failures by kind, keeps the last few errors, and holds the breaker;
    tells its listeners (``add_listener``: the metrics) of each outcome. Loop-thread only."""

    def __init__(self, keep_errors: int = 20, breaker: CircuitBreaker | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.fetches: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.last_success: float | None = None
        self.last_failure: float | None = None
        self.recent_errors: deque[UpstreamEvent] = deque(maxlen=keep_errors)
        self.breaker = breaker if breaker is not None else CircuitBreaker(clock=clock)
        self.storage_failures = 0
        self.last_storage_failure: UpstreamEvent | None = None
        self._clock = clock
        self._listeners: list[HealthListener] = []
        self.breaker.on_change = self._breaker_changed

    def add_listener(self, listener: HealthListener) -> None:
        """Tell ``listener`` of every outcome from now on, and of the breaker's state at once."""
        self._listeners.append(listener)
        listener.breaker_changed(self.breaker.state, False)

    def _breaker_changed(self, state: BreakerState, opened: bool) -> None:
        for listener in self._listeners:
            listener.breaker_changed(state, opened)

    def succeeded(self, kind: str) -> None:
        self.fetches[kind] += 1
        self.last_success = self._clock()
        for listener in self._listeners:
            listener.fetched(kind, True)
        if kind in INDEX_KINDS:
            self.breaker.succeeded()

    def failed(self, kind: str, error: BaseException) -> None:
        self.fetches[kind] += 1
        self.errors[kind] += 1
        self.last_failure = self._clock()
        message = str(error) or type(error).__name__
        self.recent_errors.append(UpstreamEvent(self.last_failure, kind, message, error_class(error)))
        for listener in self._listeners:
            listener.fetched(kind, False)
        if kind in INDEX_KINDS:
            self.breaker.failed(message, error_class(error))

    @contextmanager
    def attempt(self, kind: str) -> Iterator[None]:
        """Count the block as one fetch of ``kind``: a failure when it raises UpstreamError
        (unreachable, timed out, 5xx, or an answer that turned out unusable), else a success.
        Cancellation (a client gone, shutdown) counts as neither."""
        try:
            yield
        except UpstreamError as exc:
            self.failed(kind, exc)
            raise
        self.succeeded(kind)

    def storage_failed(self, kind: str, error: BaseException) -> None:
        """Caching upstream data failed locally (disk full, read-only, I/O error): not upstream's fault."""
        self.storage_failures += 1
        self.last_storage_failure = UpstreamEvent(self._clock(), kind, str(error) or type(error).__name__,
                                                  error_class(error))
        for listener in self._listeners:
            listener.storage_failed(kind)

    def report(self) -> UpstreamReport:
        """This process's view of upstream now, as plain values."""
        return UpstreamReport(self.state, self.last_success, self.last_failure, tuple(self.recent_errors),
                              dict(self.fetches), dict(self.errors), self.breaker.report(),
                              self.storage_failures, self.last_storage_failure)

    @property
    def state(self) -> str:
        """"unknown" before any fetch, "failing" when the last answer was a failure, else "ok"."""
        if self.last_success is None and self.last_failure is None:
            return "unknown"
        if self.last_failure is not None and (self.last_success is None or self.last_failure > self.last_success):
            return "failing"
        return "ok"

