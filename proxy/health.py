"""What the proxy remembers about its upstream's recent behaviour: for /-/health, metrics, the UI."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UpstreamEvent:
    at: float  # unix time
    kind: str  # "page", "list" or "file"
    message: str


class UpstreamHealth:
    """Counts fetches and failures by kind and keeps the last few errors. Loop-thread only."""

    def __init__(self, keep_errors: int = 20) -> None:
        self.fetches: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.last_success: float | None = None
        self.last_failure: float | None = None
        self.recent_errors: deque[UpstreamEvent] = deque(maxlen=keep_errors)

    def succeeded(self, kind: str) -> None:
        self.fetches[kind] += 1
        self.last_success = time.time()

    def failed(self, kind: str, error: BaseException) -> None:
        self.fetches[kind] += 1
        self.errors[kind] += 1
        self.last_failure = time.time()
        self.recent_errors.append(UpstreamEvent(self.last_failure, kind, str(error) or type(error).__name__))

    @property
    def state(self) -> str:
        """"unknown" before any fetch, "failing" when the last answer was a failure, else "ok"."""
        if self.last_success is None and self.last_failure is None:
            return "unknown"
        if self.last_failure is not None and (self.last_success is None or self.last_failure > self.last_success):
            return "failing"
        return "ok"
