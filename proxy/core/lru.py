"""A least-recently-used mapping bounded by a weight budget (bytes, entries, ...).

The one place that configures ``cachetools.LRUCache`` for the proxy: a well-kept library does the
recency order and the weighted eviction; this module only adds the two rules the callers rely on
(a value heavier than the whole budget is dropped rather than raising, and ``get``/``pop`` answer
``None`` for a miss).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from cachetools import LRUCache

K = TypeVar("K")
V = TypeVar("V")


def _one(_: object) -> int:
    return 1


class LruCache(Generic[K, V]):
    """Keeps the most recently used values whose weights sum to at most ``budget``.

    ``weigh(value)`` gives a value's weight (a non-negative int, e.g. its size in bytes); by
    default every value weighs 1, so ``budget`` counts entries. A value heavier than the whole
    budget is not kept at all (and a previous value under its key is dropped). Not thread-safe:
    the event loop is its only user.
    """

    def __init__(self, budget: int, weigh: Callable[[V], int] = _one) -> None:
        self._entries: LRUCache[K, V] = LRUCache(maxsize=budget, getsizeof=weigh)

    @property
    def budget(self) -> int:
        """The most weight the cache holds at once."""
        return int(self._entries.maxsize)

    @property
    def weight(self) -> int:
        """The summed weight of the values held now."""
        return int(self._entries.currsize)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The value under ``key`` (now the most recently used), or None."""
        return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` under ``key``, evicting the least recently used until it fits."""
        try:
            self._entries[key] = value
        except ValueError:  # cachetools: "value too large" for the whole budget
            self._entries.pop(key, None)

    def pop(self, key: K) -> V | None:
        """Forget ``key``; its value, or None when it was not held."""
        return self._entries.pop(key, None)
