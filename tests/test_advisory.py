"""Locks across replicas (proxy/storage/sql/advisory.py) on a real PostgreSQL: one holder per name
across sessions and within one, released by unlock or by the session's end."""

from __future__ import annotations

import asyncio

from proxy.storage.sql.advisory import AdvisoryLocks, NoLocks, lock_key


async def test_one_session_at_a_time_holds_a_name_until_it_lets_go_or_ends(pg_url: str) -> None:
    a, b = AdvisoryLocks(pg_url), AdvisoryLocks(pg_url)
    try:
        assert await a.try_lock("demo/demo-1.0.tar.gz")
        assert not await b.try_lock("demo/demo-1.0.tar.gz")
        assert await b.try_lock("demo/demo-2.0.tar.gz"), "another name is free"
        await a.unlock("demo/demo-1.0.tar.gz")
        assert await b.try_lock("demo/demo-1.0.tar.gz")
        assert not await a.try_lock("demo/demo-1.0.tar.gz")
        await b.close()  # the session ends: PostgreSQL lets go of everything it held
        assert await a.try_lock("demo/demo-1.0.tar.gz")
    finally:
        await a.close()
        await b.close()


async def test_within_one_session_a_held_name_is_not_taken_again(pg_url: str) -> None:
    """PostgreSQL's session locks nest; two tasks of one process must not both get one."""
    locks = AdvisoryLocks(pg_url)
    try:
        taken = await asyncio.gather(*(locks.try_lock("demo/x.whl") for _ in range(5)))
        assert sorted(taken) == [False] * 4 + [True]
        assert not await locks.try_lock("demo/x.whl")
        await locks.unlock("demo/x.whl")
        assert await locks.try_lock("demo/x.whl"), "one unlock let go of it entirely"
    finally:
        await locks.close()


async def test_sqlite_grants_every_lock() -> None:
    locks = NoLocks()
    assert await locks.try_lock("a") and await locks.try_lock("a")


def test_lock_keys_are_signed_32_bit_and_stable() -> None:
    keys = {lock_key(f"p/{n}") for n in range(1000)}
    assert all(-2**31 <= key < 2**31 for key in keys) and len(keys) > 990
    assert lock_key("p/x") == lock_key("p/x")
