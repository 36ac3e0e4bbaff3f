"""The weighted least-recently-used cache (proxy/core/lru.py, cachetools underneath)."""

from __future__ import annotations

import pytest

from proxy.core.lru import LruCache


def test_evicts_the_least_recently_used_until_the_new_value_fits() -> None:
    cache: LruCache[str, bytes] = LruCache(10, weigh=len)
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.get("a") == b"1234"  # a is now the most recently used
    cache.put("c", b"1234")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"1234", None, b"1234")
    assert cache.weight == 8


def test_one_heavy_value_evicts_several_light_ones_oldest_first() -> None:
    cache: LruCache[str, bytes] = LruCache(10, weigh=len)
    for key in "abcde":
        cache.put(key, b"12")
    cache.get("a")
    cache.put("big", b"1234567")  # needs 7 of 10: b, c, d and e go (oldest first), a stays
    assert [key for key in "abcde" if cache.get(key) is not None] == ["a"]
    assert (len(cache), cache.weight) == (2, 9)


@pytest.mark.parametrize("size", [5, 11, 1000])
def test_a_value_heavier_than_the_budget_is_not_kept_and_evicts_nothing(size: int) -> None:
    cache: LruCache[str, bytes] = LruCache(4, weigh=len)
    cache.put("small", b"12")
    cache.put("big", b"x" * size)
    assert cache.get("big") is None
    assert (cache.get("small"), cache.weight) == (b"12", 2)


def test_a_value_exactly_the_budget_is_kept_alone() -> None:
    cache: LruCache[str, bytes] = LruCache(4, weigh=len)
    cache.put("small", b"12")
    cache.put("full", b"1234")
    assert (cache.get("small"), cache.get("full"), cache.weight) == (None, b"1234", 4)


def test_replacing_a_key_with_a_too_heavy_value_forgets_the_old_one() -> None:
    cache: LruCache[str, bytes] = LruCache(4, weigh=len)
    cache.put("a", b"12")
    cache.put("a", b"12345")
    assert (cache.get("a"), len(cache), cache.weight) == (None, 0, 0)


def test_replacing_a_key_reweighs_it() -> None:
    cache: LruCache[str, bytes] = LruCache(10, weigh=len)
    cache.put("a", b"123456")
    cache.put("a", b"1")
    assert (len(cache), cache.weight) == (1, 1)
    assert cache.pop("a") == b"1"
    assert (len(cache), cache.weight, cache.pop("a")) == (0, 0, None)


def test_putting_again_makes_a_key_the_most_recent() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 3)
    cache.put("c", 4)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (3, None, 4)


def test_without_a_weigher_the_budget_counts_entries() -> None:
    cache: LruCache[int, str] = LruCache(3)
    for key in range(5):
        cache.put(key, "x" * 100)
    assert ([cache.get(key) is not None for key in range(5)], cache.weight, cache.budget) == (
        [False, False, True, True, True], 3, 3)
