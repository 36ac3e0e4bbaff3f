"""The file cache's shared ledger (issue 11 D): one SQLite database for every server process of a
data directory, so that the size limit holds for their sum, an eviction is decided once, and the
figures are the same whichever process is asked. Two connections stand for two processes."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.storage import cache_usage as cacheusage
from proxy.storage.cache_usage import CacheUsage
from proxy.storage.ledger import CachedEntry, Key, Ledger, Totals


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "usage.sqlite3"


@pytest.fixture
def ledger(path: Path) -> Iterator[Ledger]:
    with Ledger(path) as opened:
        yield opened


def k(name: str) -> Key:
    return ("p", name)


class Removed:
    """What an eviction unlinked (the ledger calls it inside its transaction)."""

    def __init__(self) -> None:
        self.keys: list[Key] = []

    def __call__(self, keys: list[Key]) -> int:
        self.keys += keys
        return 10 * len(keys)


@pytest.mark.parametrize(("limit", "evicted"), [(30, []), (25, ["old"]), (20, ["old"]), (10, ["old", "mid"]),
                                                (0, ["old", "mid", "new"])])
def test_eviction_takes_the_least_recently_used_first(ledger: Ledger, limit: int, evicted: list[str]) -> None:
    for name, at in (("new", 300.0), ("old", 100.0), ("mid", 200.0)):
        ledger.record(k(name), 10, at)
    removed = Removed()
    eviction = ledger.evict(limit, frozenset(), 0.0, removed)
    assert [name for _, name in eviction.keys] == evicted == [name for _, name in removed.keys]
    assert eviction.remaining == ledger.totals().bytes == 30 - 10 * len(evicted)
    assert eviction.freed == 10 * len(evicted)


def test_a_later_use_moves_a_file_to_the_back(ledger: Ledger) -> None:
    for name, at in (("a", 1.0), ("b", 2.0), ("c", 3.0)):
        ledger.record(k(name), 10, at)
    ledger.touch([(k("a"), 4.0), (k("b"), 0.5)])  # an older use never moves a file forward
    assert ledger.keys() == [k("b"), k("c"), k("a")]
    assert ledger.evict(20, frozenset(), 0.0, Removed()).keys == [k("b")]


def test_files_being_served_here_are_spared(ledger: Ledger) -> None:
    ledger.record(k("a"), 10, 1.0)
    ledger.record(k("b"), 10, 2.0)
    assert ledger.evict(0, frozenset({k("a")}), 0.0, Removed()).keys == [k("b")]
    assert ledger.totals() == Totals(1, 10)


def test_recently_used_files_go_only_when_older_ones_are_not_enough(ledger: Ledger) -> None:
    """Another process may be about to open a file it used a moment ago: such files are evicted
    last, but the limit still holds (an open file stays readable; a vanished one is re-fetched)."""
    for name, at in (("recent1", 50.0), ("old", 10.0), ("recent2", 60.0), ("older", 5.0)):
        ledger.record(k(name), 10, at)
    assert ledger.evict(20, frozenset(), 40.0, Removed()).keys == [k("older"), k("old")]
    assert ledger.evict(10, frozenset(), 40.0, Removed()).keys == [k("recent1")]


def test_two_processes_see_the_same_figures(path: Path) -> None:
    with Ledger(path) as first, Ledger(path) as second:
        first.record(k("a"), 100, 1.0)
        second.record(k("b"), 50, 2.0)
        first.record(k("a"), 120, 3.0)  # replaced by a bigger one: counted once
        assert first.totals() == second.totals() == Totals(2, 170)
        assert first.keys() == second.keys() == [k("b"), k("a")]
        assert first.projects() == second.projects() == 1


def test_an_eviction_is_decided_once_when_processes_race(path: Path) -> None:
    """Two processes over the limit at the same moment: one evicts what is needed, the other
    then finds the sum under the limit and evicts nothing (no file is evicted twice or for nothing)."""
    with Ledger(path) as setup:
        for number in range(10):
            setup.record(k(f"f{number}"), 10, float(number))
    barrier = threading.Barrier(2)
    results: list[list[Key]] = []

    def evict() -> None:
        with Ledger(path) as mine:
            barrier.wait()
            results.append(mine.evict(60, frozenset(), 0.0, Removed()).keys)

    threads = [threading.Thread(target=evict) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results, key=len) == [[], [k(f"f{n}") for n in range(4)]]
    with Ledger(path) as check:
        assert check.totals() == Totals(6, 60)


operations = st.lists(st.one_of(
    st.tuples(st.just("record"), st.sampled_from("abcdef"), st.integers(0, 1000), st.floats(0, 100)),
    st.tuples(st.just("forget"), st.sampled_from("abcdef")),
    st.tuples(st.just("touch"), st.sampled_from("abcdef"), st.floats(0, 200)),
    st.tuples(st.just("evict"), st.integers(0, 3000)),
), max_size=30)


@given(operations)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_totals_are_always_the_sum_of_the_rows(tmp_path: Path, ops: list[tuple]) -> None:  # type: ignore[type-arg]
    """The totals kept by triggers (read in O(1) for every gauge) never drift from the rows."""
    path = tmp_path / f"ledger-{uuid.uuid4().hex}.sqlite3"
    with Ledger(path) as ledger:
        for op in ops:
            if op[0] == "record":
                ledger.record(k(op[1]), op[2], op[3])
            elif op[0] == "forget":
                ledger.forget([k(op[1])])
            elif op[0] == "touch":
                ledger.touch([(k(op[1]), op[2])])
            else:
                ledger.evict(op[1], frozenset(), 50.0, Removed())
                assert ledger.totals().bytes <= op[1]
        db = sqlite3.connect(path)
        files, size = db.execute("SELECT count(*), coalesce(sum(size), 0) FROM files").fetchone()
        db.close()
        assert ledger.totals() == Totals(files, size)


def test_reconcile_makes_the_ledger_agree_with_the_files(ledger: Ledger) -> None:
    """At start-up and in the CLI: the scan's view wins, but every difference is looked at again,
    as another process may cache or evict a file while the scan runs."""
    ledger.record(k("kept"), 10, 5.0)
    ledger.record(k("gone"), 10, 5.0)  # deleted behind the ledger's back
    ledger.record(k("resized"), 10, 5.0)
    ledger.record(k("cached-during-scan"), 30, 7.0)  # not in the scan, but on disk now
    on_disk = {k("kept"): 10, k("resized"): 20, k("new"): 40, k("cached-during-scan"): 30}
    scanned = [CachedEntry(key, size, 1.0) for key, size in on_disk.items() if key[1] != "cached-during-scan"]
    scanned.append(CachedEntry(k("evicted-during-scan"), 50, 1.0))  # in the scan, gone now

    def entry_of(key: Key) -> CachedEntry | None:
        return CachedEntry(key, on_disk[key], 1.0) if key in on_disk else None

    assert ledger.reconcile(scanned, entry_of) == 3  # gone, resized, new
    assert ledger.totals() == Totals(4, 100)
    assert set(ledger.keys()) == set(on_disk)
    assert ledger.reconcile(scanned, entry_of) == 0


@pytest.mark.parametrize("damage", [b"this is not a database", b"SQLite format 3\x00" + b"\xff" * 200])
def test_an_unreadable_ledger_is_rebuilt(path: Path, damage: bytes) -> None:
    """It is derived data: the next scan fills it again."""
    path.write_bytes(damage)
    with Ledger(path) as ledger:
        assert ledger.totals() == Totals(0, 0)
        ledger.record(k("a"), 1, 1.0)
        assert ledger.totals() == Totals(1, 1)


class CountingLedger(Ledger):
    writes = 0

    def touch(self, uses: object) -> None:
        CountingLedger.writes += 1
        super().touch(uses)  # type: ignore[arg-type]


async def test_a_cache_hit_writes_nothing_and_uses_are_batched(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the hot path cheap: a hit is noted in memory; one transaction writes a batch of uses,
    and a file's use at most once per TOUCH_EVERY_S seconds."""
    monkeypatch.setattr(cacheusage, "Ledger", CountingLedger)
    CountingLedger.writes = 0
    usage = CacheUsage(path)
    await usage.start()
    try:
        for name in "abc":
            await usage.admit(k(name), 10)
        for _ in range(100):
            for name in "abc":
                usage.used(k(name), 10)
        await usage.flush()
        assert CountingLedger.writes == 0  # recorded less than TOUCH_EVERY_S ago: nothing to write
        monkeypatch.setattr(cacheusage, "TOUCH_EVERY_S", 0.0)  # as if that much time had passed
        for _ in range(300):
            usage.used(k("a"), 10)
        assert CountingLedger.writes == 0  # hits are noted in memory only
        await usage.flush()
        await usage.flush()
        assert CountingLedger.writes == 1  # one batch
        assert await usage.keys() == [k("b"), k("c"), k("a")]
    finally:
        await usage.close()


async def test_a_file_being_served_keeps_its_last_use_fresh(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pins are per process; what other processes see of them is a fresh last use, refreshed at
    each flush while the file is being sent, so their evictions prefer other files."""
    assert cacheusage.RECENT_S > cacheusage.TOUCH_EVERY_S + cacheusage.FLUSH_EVERY_S
    usage = CacheUsage(path)
    await usage.start()
    try:
        await usage.admit(k("long"), 10)
        await usage.admit(k("other"), 10)
        with usage.pinned(k("long")):
            monkeypatch.setattr(cacheusage, "TOUCH_EVERY_S", 0.0)  # that much later, still being sent
            await usage.flush()
        assert await usage.keys() == [k("other"), k("long")]
    finally:
        await usage.close()


async def test_room_is_made_before_a_file_lands(path: Path) -> None:
    """A file is counted, and older ones evicted, before it is renamed into the cache: the files
    on disk never sum to more than the limit, not even for a moment."""
    removed = Removed()
    usage = CacheUsage(path, max_size=25, remove=removed)
    await usage.start()
    try:
        await usage.admit(k("a"), 10)
        await usage.admit(k("b"), 10)
        with usage.pinned(k("a")):  # being sent by this process
            await usage.admit(k("c"), 10)
        assert removed.keys == [k("b")]
        assert await usage.totals() == Totals(2, 20)
        await usage.forget(k("c"))  # it did not land after all
        assert await usage.keys() == [k("a")]
    finally:
        await usage.close()
