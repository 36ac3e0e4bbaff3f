"""Failed-login limits: token buckets per client address and per user name, in memory.

Every password or token check costs a deliberately slow scrypt, so guessing is refused before
that cost is paid. A bucket holds ``per_minute`` tokens and refills at ``per_minute`` a minute;
a failed login takes one token from the bucket of its client address and one from that of its
user name (a token's id for ``__token__`` logins), so a burst of that many failures is allowed,
then one every ``60 / per_minute`` seconds. An attempt that finds either bucket empty is refused
at once (TooManyAttempts, HTTP 429 with Retry-After), credentials unchecked.

While a check runs, its attempt holds one token of each bucket in reserve: of 64 concurrent
guesses from one address only as many are checked as the bucket allows, and once those fail the
others are refused. Attempts beyond the reserve wait for the checks under way rather than being
refused, so right credentials, which cost nothing, are never turned away by their own number.

The per-user limit should be the larger: failures from one address then never empty a user's
bucket, so one client cannot lock a user out, while many addresses guessing one password can
only guess slowly. The state is per server process (each of ``--workers`` counts on its own) and
is lost on restart; at most ``max_keys`` addresses and names are remembered, least recently
seen forgotten first. Behind a reverse proxy every client has the proxy's address.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from proxy.core.errors import TooManyAttempts

MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class Attempt:
    """The keys one login attempt holds a token of, in reserve until it is settled."""

    keys: tuple[tuple[str, str], ...]  # (bucket kind, address or user name)


class _Buckets:
    def __init__(self, per_minute: int, clock: Callable[[], float], max_keys: int) -> None:
        self.capacity = float(per_minute)
        self._rate = per_minute / 60.0  # tokens per second
        self._clock = clock
        self._max_keys = max_keys
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def level(self, key: str) -> float:
        tokens, at = self._levels.get(key, (self.capacity, 0.0))
        return min(self.capacity, tokens + (self._clock() - at) * self._rate)

    def wait(self, key: str) -> int:
        """Whole seconds until ``key`` has a token again."""
        return max(1, math.ceil((1.0 - self.level(key)) / self._rate))

    def take(self, key: str) -> None:
        self._levels[key] = (self.level(key) - 1.0, self._clock())
        self._levels.move_to_end(key)
        while len(self._levels) > self._max_keys:
            self._levels.popitem(last=False)


_WHAT = {"address": "from this address", "user": "for this user"}


class LoginLimiter:
    """Failed logins allowed per client address and per user name (``0``: no such limit)."""

    def __init__(self, per_address: int, per_user: int, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_KEYS) -> None:
        self._buckets = {kind: _Buckets(limit, clock, max_keys)
                         for kind, limit in (("address", per_address), ("user", per_user)) if limit}
        self._reserved: Counter[tuple[str, str]] = Counter()
        self._settled = asyncio.Event()  # replaced each time: set when an attempt is settled

    async def acquire(self, address: str | None, user: str | None) -> Attempt:
        """Reserve a token of each bucket for an attempt from ``address`` as ``user``, waiting for
        the checks under way when they hold the last ones; TooManyAttempts when a bucket is empty."""
        keys = tuple((kind, key) for kind, key in (("address", address), ("user", user))
                     if key is not None and kind in self._buckets)
        while True:
            waits = [(_WHAT[kind], self._buckets[kind].wait(key)) for kind, key in keys
                     if self._buckets[kind].level(key) < 1]
            if waits:
                what, seconds = max(waits, key=lambda item: item[1])
                raise TooManyAttempts(what, seconds)
            if all(self._buckets[kind].level(key) - self._reserved[(kind, key)] >= 1 for kind, key in keys):
                self._reserved.update(keys)
                return Attempt(keys)
            await self._settled.wait()

    def failed(self, attempt: Attempt) -> None:
        """The credentials were wrong: the reserved tokens are spent."""
        for kind, key in attempt.keys:
            self._buckets[kind].take(key)
        self._release(attempt)

    def succeeded(self, attempt: Attempt) -> None:
        """The credentials were right (or were never judged): the reserved tokens go back."""
        self._release(attempt)

    def _release(self, attempt: Attempt) -> None:
        self._reserved.subtract(attempt.keys)
        for key in attempt.keys:
            if self._reserved[key] <= 0:
                del self._reserved[key]
        settled, self._settled = self._settled, asyncio.Event()
        settled.set()
