"""What is known of upstream's recent behaviour, as plain values: the circuit breaker's states, a
failure remembered, a report of the whole for /-/health and the status page, and the listener
through which the counts reach the metrics (``proxy.upstream.health`` keeps the live state)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


class BreakerState(enum.Enum):
    """Whether page requests may ask upstream. Value: as shown in /-/health and metrics."""

    CLOSED = "closed"  # upstream is asked as usual
    OPEN = "open"  # upstream is failing: not asked; stale copies served at once
    HALF_OPEN = "half-open"  # a probe is asking upstream; everything else still as when open


@dataclass(frozen=True, slots=True)
class UpstreamEvent:
    at: float  # unix time
    kind: str  # "page", "list", "probe" or "file"
    message: str  # for the log: may name internal hosts and paths
    error_class: str = "error"  # for anyone to see (``proxy.upstream.health.error_class``)


@dataclass(frozen=True, slots=True)
class BreakerReport:
    state: BreakerState
    since: float | None  # unix time it started failing (or recovered); None: never opened
    consecutive_failures: int
    threshold: int  # 0: never opens
    openings: int
    last_error_class: str | None


@dataclass(frozen=True, slots=True)
class UpstreamReport:
    """One server process's view of upstream at a moment, for /-/health and the status page."""

    state: str  # "unknown" before any fetch, "failing" when the last answer was a failure, else "ok"
    last_success: float | None  # unix times
    last_failure: float | None
    recent_errors: tuple[UpstreamEvent, ...]  # oldest first
    fetches: Mapping[str, int]  # by kind ("page", "list", "probe", "file")
    errors: Mapping[str, int]
    breaker: BreakerReport
    storage_failures: int  # caching upstream data failed locally (a full disk): not upstream's fault
    last_storage_failure: UpstreamEvent | None


class HealthListener(Protocol):
    """Told of every outcome as it happens (the metrics are one): each call is one event."""

    def fetched(self, kind: str, ok: bool) -> None:
        """One request to upstream of ``kind`` ended: a success, or a failure after retries."""

    def breaker_changed(self, state: BreakerState, opened: bool) -> None:
        """The breaker is now in ``state`` (also told once when the listener is added);
        ``opened``: this change is an opening (closed -> open), counted once."""

    def storage_failed(self, kind: str) -> None:
        """Caching upstream data of ``kind`` failed on the local disk."""


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """For /-/health, the UI and metrics. ``fetched_at`` is unix seconds of the last time the
    source confirmed the data, ``age_s`` seconds since then (None: no data yet), ``records`` the
    OSV records in the stored copy, ``last_error`` the last refresh's or load's failure (None
    after a success), ``version`` the loaded data's name (AdvisoryIndex.version)."""

    source: str
    fetched_at: float | None
    age_s: float | None
    records: int
    last_error: str | None
    version: str | None = None
