"""Turns to fetch an upstream page across replicas (issue 14): PostgreSQL advisory locks, one per
page, on one connection of this process's own (autocommit, apart from the engine's pool, so a
slow upstream holds no pooled connection and no executor thread).

A replica that wants to refresh a page tries its lock; while another replica holds it (it is
fetching that page now), it tries again with growing pauses, up to the wait it was given, so it
can read the record the other one stores instead of asking upstream itself. A lock goes with
its connection: a replica that dies or loses the database lets go of every lock it held. When
the database cannot be reached, every replica fetches for itself, as without coordination.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator

import psycopg
import structlog

from proxy.storage.sql.engine import masked

log = structlog.get_logger(__name__)
# The key space of the pages' two-int advisory locks (apart from the blobs' and one-bigint keys).
PAGES_LOCK_SPACE = 0x75706167  # "upag"
# Seconds between tries of a lock someone holds: the first, growing to the last.
TRY_FIRST, TRY_MAX = 0.02, 0.25


def lock_id(key: str) -> int:
    """The second int of ``key``'s lock: 32 bits of its sha256 (two keys sharing one only take
    turns they did not need to)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big", signed=True)


class AdvisoryTurns:
    """Turns to fetch, by key (``proxy.storage.upstream_pages.FetchTurns``), on the PostgreSQL
    database at ``url`` (psycopg's connection string). Connects on first use and again after
    losing the connection. Session locks are re-entrant: one process must not ask for a turn
    it holds (the caller's single-flight per page sees to that). ``close`` at the end."""

    def __init__(self, url: str, connect_timeout: float = 5.0) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._connection: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._connecting = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def turn(self, key: str, wait: float) -> AsyncIterator[bool]:
        """Hold ``key``'s turn for the block: True when it is this replica's to fetch (the lock
        held, or the database unreachable), False when another replica still held it after
        ``wait`` seconds."""
        lock = (PAGES_LOCK_SPACE, lock_id(key))
        held = await self._acquire(lock, wait)
        try:
            yield held is not False
        finally:
            if held:
                await self._release(lock)

    async def _acquire(self, lock: tuple[int, int], wait: float) -> bool | None:
        """True: held; False: another holds it after ``wait``; None: no database (not held)."""
        give_up = time.monotonic() + wait
        pause = TRY_FIRST
        while True:
            got = await self._execute("SELECT pg_try_advisory_lock(%s, %s)", lock)
            if got is None or got:
                return got
            left = give_up - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(pause, left))  # a lock held elsewhere says nothing when it goes
            pause = min(pause * 2, TRY_MAX)

    async def _release(self, lock: tuple[int, int]) -> None:
        if not await self._execute("SELECT pg_advisory_unlock(%s, %s)", lock):
            await self._drop()  # unsure whether it is still held: the connection goes, and its locks

    async def _execute(self, query: str, lock: tuple[int, int]) -> bool | None:
        """The query's one boolean; None when the database cannot be reached (logged)."""
        try:
            connection = await self._connect()
            cursor = await connection.execute(query, lock)
            row = await cursor.fetchone()
        except (psycopg.Error, OSError) as exc:
            log.warning("page_turns_unavailable", database=masked(self._url), error=str(exc).strip() or repr(exc))
            await self._drop()
            return None
        except asyncio.CancelledError:
            await self._drop()  # a lock may have been taken by the query cut short: let go of all
            raise
        return bool(row and row[0])

    async def _connect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        async with self._connecting:
            if self._connection is None or self._connection.closed:
                self._connection = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=max(1, round(self._connect_timeout)))
            return self._connection

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await connection.close()

    async def close(self) -> None:
        """Close the connection: every lock still held goes with it."""
        await self._drop()
