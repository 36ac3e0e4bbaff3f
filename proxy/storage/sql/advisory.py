"""Locks across replicas for the shared tier of cached files (issue 14): PostgreSQL's session-level
advisory locks, held on one connection of this process's own (psycopg's async driver: no thread
waits for them).

A lock lives as long as the session that took it: when a replica dies (even ``kill -9``), its
connection closes and PostgreSQL releases every lock it held, so a waiter takes over. The locks
only spare work (one upstream fetch per cold file); nothing relies on them for correctness (a
blob is content-addressed, a row is replaced whole), so a lost connection only costs a duplicate
download. SQLite (one host) has no such locks: ``NoLocks`` grants every one, and each replica on
the host fetches a cold file at most once (its own worker processes share one download through
their data directory's part files).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Protocol

import psycopg
import structlog

from proxy.core.errors import DatabaseUnavailable
from proxy.storage.sql.engine import masked

log = structlog.get_logger(__name__)
# The key space of the cached files' locks (two-int advisory locks: apart from the other ones).
FILES_LOCK_SPACE = 0x66696C65  # "file"
STATEMENT_S = 10.0  # seconds one lock statement may take before the connection is given up


def lock_key(name: str) -> int:
    """A signed 32-bit key for ``name`` (two names may share one: they then only wait for each other)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") - 2**31


class Locks(Protocol):
    """Named locks across replicas."""

    async def try_lock(self, name: str) -> bool:
        """Take the lock of ``name`` unless another replica holds it; whether it was taken.
        DatabaseUnavailable when the database cannot be asked."""
        ...

    async def unlock(self, name: str) -> None:
        """Let go of a lock taken here (a failure is logged: the session's end releases it)."""
        ...

    async def close(self) -> None: ...


class NoLocks:
    """SQLite's: every lock is granted (see the module's docstring)."""

    async def try_lock(self, name: str) -> bool:
        return True

    async def unlock(self, name: str) -> None:
        return None

    async def close(self) -> None:
        return None


class AdvisoryLocks:
    """PostgreSQL's advisory locks on a connection to ``url`` (psycopg's connection string) made
    when first needed, and again after it was lost (the locks it held are then gone: logged)."""

    def __init__(self, url: str, connect_timeout: float = 5.0) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._connection: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._held: set[str] = set()
        self._taking: set[str] = set()
        self._turn = asyncio.Lock()  # one statement at a time on the connection

    async def try_lock(self, name: str) -> bool:
        # A session's locks nest: held or being taken by another task here is held (checked and
        # marked with no await in between).
        if name in self._held or name in self._taking:
            return False
        self._taking.add(name)
        try:
            taken = await self._ask("SELECT pg_try_advisory_lock(%s, %s)", name)
        finally:
            self._taking.discard(name)
        if taken:
            self._held.add(name)
        return taken

    async def unlock(self, name: str) -> None:
        if name not in self._held:
            return
        self._held.discard(name)
        try:
            if not await self._ask("SELECT pg_advisory_unlock(%s, %s)", name):
                log.warning("advisory_lock_not_held", name=name)
        except DatabaseUnavailable as exc:
            log.warning("advisory_unlock_failed", name=name, error=str(exc))

    async def _ask(self, statement: str, name: str) -> bool:
        async with self._turn:
            try:
                connection = await self._connect()
                cursor = await asyncio.wait_for(
                    connection.execute(statement, (FILES_LOCK_SPACE, lock_key(name))), STATEMENT_S)
                row = await cursor.fetchone()
            except (psycopg.Error, OSError, TimeoutError, asyncio.TimeoutError) as exc:
                await self._drop()
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise DatabaseUnavailable(masked(self._url), reason) from None
        return bool(row and row[0])

    async def _connect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        if self._connection is not None and not self._connection.closed:
            return self._connection
        if self._held:
            log.warning("advisory_locks_lost", names=sorted(self._held))
            self._held.clear()
        self._connection = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, connect_timeout=max(1, round(self._connect_timeout)))
        return self._connection

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await connection.close()
            except (psycopg.Error, OSError):
                pass
        if self._held:
            log.warning("advisory_locks_lost", names=sorted(self._held))
            self._held.clear()

    async def close(self) -> None:
        """Close the connection: every lock still held is released."""
        async with self._turn:
            self._held.clear()
            await self._drop()
